"""What the analysis tests build (see conftest.py) and the facts they check:
images made by dockyard from busybox:

- ``waste:1``: files copied in, then deleted, overwritten and re-added by
  later layers, so the wasted bytes are known exactly;
- ``pkgs:1``: a dpkg status file with two packages, an apk database with two,
  a Python dist-info directory and /etc/os-release, copied in;
- ``pkgs:2``: built on pkgs:1 with another package set, config and files.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from dockyard import api
from dockyard.store import Store

# sizes of the files of waste:1, and what happens to them
SIZES = {"app/big.dat": 300_000, "app/lib.so": 120_000, "app/data.bin": 50_000,
         "app/sub/a.txt": 20_000, "app/sub/b.txt": 10_000, "app/small.cfg": 700}
NEW_DATA = 60_000  # data.bin as the third layer rewrites it
# removed in layer 2: big.dat, the whole sub/ directory; overwritten in layer 3: data.bin
WASTED = SIZES["app/big.dat"] + SIZES["app/sub/a.txt"] + SIZES["app/sub/b.txt"] + SIZES["app/data.bin"]

DPKG_STATUS = """\
Package: libfoo1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 120
Maintainer: Foo Maintainers <foo@example.org>
Architecture: amd64
Multi-Arch: same
Source: foo (1.4-2)
Version: 1.4-2+deb12u1
Depends: libc6 (>= 2.34)
Description: the foo library
 The foo library does foo things.
 .
 More text.
Homepage: https://foo.example.org

Package: bar-utils
Status: install ok installed
Installed-Size: 64
Maintainer: Bar Team <bar@example.org>
Architecture: all
Version: 2:0.9.1-1
Description: utilities for bar

Package: gone-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 0.1
Description: removed, only its config files are left
"""

APK_INSTALLED = """\
C:Q1abcdefghijklmnopqrstuvwxyz0123=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1700000000
c:f93af038c3de7146121c2ea8124ba5ce29b4b058
F:lib
R:ld-musl-x86_64.so.1

C:Q1zyxwvutsrqponmlkjihgfedcba9876=
P:zlib
V:1.3.1-r0
A:x86_64
S:53000
I:110592
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
m:Natanael Copa <ncopa@alpinelinux.org>
F:lib
R:libz.so.1.3.1
"""

METADATA = """\
Metadata-Version: 2.1
Name: foo
Version: 1.2
Summary: Foo for Python
Home-page: https://pypi.example.org/foo
Author: Jane Doe
Author-email: jane@example.org
License: MIT
Classifier: Programming Language :: Python :: 3

Long description here.
"""

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n' \
             'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n'

SITE = "usr/lib/python3.11/site-packages"


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if name == "Dockerfile" else content)
    return root


def _blob(n: int, seed: int) -> bytes:
    """n bytes that differ per seed (compressible is fine: layers are stored raw)."""
    unit = bytes((seed * 31 + i) % 251 for i in range(251))
    return (unit * (n // len(unit) + 1))[:n]


def build_images(base: Path, busybox_tar: Path) -> Store:
    store = Store(base / "store")
    api.import_image(busybox_tar, "busybox:latest", store=store)
    waste = _write(base / "waste", {
        "Dockerfile": """
            FROM busybox:latest
            COPY app/ /opt/app/
            RUN rm /opt/app/big.dat && rm -r /opt/app/sub && echo hi > /opt/app/new.txt
            COPY data2.bin /opt/app/data.bin
            ENV MODE=prod
            COPY extra.bin /opt/extra.bin
        """,
        **{name: _blob(size, i) for i, (name, size) in enumerate(SIZES.items())},
        "data2.bin": _blob(NEW_DATA, 99),
        "extra.bin": _blob(80_000, 7),
    })
    api.build(waste, store=store, tags=["waste:1"])
    pkgs = _write(base / "pkgs", {
        "Dockerfile": """
            FROM busybox:latest
            COPY rootfs/ /
            COPY conf.txt same.txt /opt/
            ENV APP=1 KEEP=yes
            LABEL version=1
            CMD ["sh"]
        """,
        "rootfs/etc/os-release": OS_RELEASE,
        "rootfs/var/lib/dpkg/status": DPKG_STATUS,
        "rootfs/lib/apk/db/installed": APK_INSTALLED,
        f"rootfs/{SITE}/foo-1.2.dist-info/METADATA": METADATA,
        f"rootfs/{SITE}/foo-1.2.dist-info/RECORD": "foo/__init__.py,,\n",
        f"rootfs/{SITE}/foo/__init__.py": "VALUE = 1\n",
        "conf.txt": "aaaa\n",
        "same.txt": "unchanged\n",
    })
    api.build(pkgs, store=store, tags=["pkgs:1"])
    status2 = DPKG_STATUS.replace("1.4-2+deb12u1", "1.4-3").split("\nPackage: bar-utils")[0]
    status2 += "\n\nPackage: newtool\nStatus: install ok installed\nArchitecture: amd64\n" \
               "Version: 3.0-1\nMaintainer: New <new@example.org>\nDescription: a new tool\n"
    pkgs2 = _write(base / "pkgs2", {
        "Dockerfile": """
            FROM pkgs:1
            COPY status /var/lib/dpkg/status
            COPY conf.txt same.txt /opt/
            COPY added.txt /opt/added.txt
            RUN chmod 0600 /opt/same.txt && rm /bin/ls
            ENV APP=2
            LABEL version=2 extra=yes
            ENTRYPOINT ["/bin/sh", "-c"]
        """,
        "status": status2,
        "conf.txt": "bbbb\n",  # same size, other bytes
        "same.txt": "unchanged\n",  # same bytes, another layer
        "added.txt": "new file\n",
    })
    api.build(pkgs2, store=store, tags=["pkgs:2"])
    return store
