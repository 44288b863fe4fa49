"""The package database readers and the license expressions, on their own."""

from __future__ import annotations

import pytest

from dockyard.analysis.licenses import parse_license
from dockyard.analysis.packages import (
    diff_packages,
    find_packages,
    is_package_db,
    os_release,
    parse_dpkg_status,
    parse_python_metadata,
    purl,
)
from dockyard.analysis.scan import Entry


def _files(items: dict[str, str | tuple[str, str]]) -> dict[str, Entry]:
    out = {}
    for path, value in items.items():
        if isinstance(value, tuple):  # ("symlink", target)
            out[path] = Entry(path, "symlink", 0, 0o777, 0, 0, value[1], 0)
        else:
            out[path] = Entry(path, "file", len(value), 0o644, 0, 0, "", 1, data=value.encode())
    return out


@pytest.mark.parametrize("path, wanted", [
    ("var/lib/dpkg/status", True),
    ("var/lib/dpkg/status-old", False),
    ("var/lib/dpkg/status.d/base", True),
    ("var/lib/dpkg/status.d/base.md5sums/x", False),
    ("lib/apk/db/installed", True),
    ("etc/os-release", True),
    ("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", True),
    ("opt/venv/lib/python3.12/site-packages/attrs-23.1.dist-info/METADATA", True),
    ("usr/lib/python3/dist-packages/foo.egg-info/PKG-INFO", True),
    ("usr/lib/python3/dist-packages/bar-1.0.egg-info", True),
    ("usr/lib/python3/dist-packages/foo.dist-info/RECORD", False),
    ("usr/share/doc/METADATA", False),
])
def test_captured_paths(path, wanted):
    assert is_package_db(path) is wanted


def test_distroless_status_d_and_os_release_symlink():
    files = _files({
        "etc/os-release": ("symlink", "../usr/lib/os-release"),
        "usr/lib/os-release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n',
        "var/lib/dpkg/status.d/base-files": "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
        "var/lib/dpkg/status.d/tzdata": "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
    })
    assert os_release(files)["VERSION_ID"] == "12"
    pkgs = find_packages(files)
    assert [(p.name, p.version, p.location) for p in pkgs] == [
        ("base-files", "12.4", "var/lib/dpkg/status.d/base-files"),
        ("tzdata", "2024a-0+deb12u1", "var/lib/dpkg/status.d/tzdata")]
    assert pkgs[0].purl == "pkg:deb/debian/base-files@12.4?arch=amd64&distro=debian-12"


def test_ubuntu_is_a_deb_namespace_and_alpine_an_apk_one():
    ubuntu = {"ID": "ubuntu", "VERSION_ID": "22.04", "ID_LIKE": "debian"}
    (p,) = parse_dpkg_status("Package: bash\nVersion: 5.1\nArchitecture: amd64\n", "s", 0, ubuntu)
    assert p.purl == "pkg:deb/ubuntu/bash@5.1?arch=amd64&distro=ubuntu-22.04"
    files = _files({"etc/os-release": "ID=alpine\nVERSION_ID=3.19.1\n",
                    "lib/apk/db/installed": "P:busybox\nV:1.36.1-r15\nA:aarch64\nL:GPL-2.0-only\n"})
    (apk,) = find_packages(files)
    assert apk.purl == "pkg:apk/alpine/busybox@1.36.1-r15?arch=aarch64&distro=alpine-3.19.1"
    assert apk.license == "GPL-2.0-only"


def test_dpkg_continuations_and_status_filter():
    text = ("Package: a\nStatus: install ok installed\nVersion: 1\nDescription: short\n long\n .\n more\n\n"
            "Package: b\nStatus: purge ok not-installed\nVersion: 2\n\n\n"
            "Package: c\nStatus: install ok half-configured\nVersion: 3\n")
    pkgs = parse_dpkg_status(text, "var/lib/dpkg/status", 0, {})
    assert [(p.name, p.description) for p in pkgs] == [("a", "short"), ("c", "")]


def test_python_metadata_variants():
    new = parse_python_metadata("Metadata-Version: 2.4\nName: My_Pkg.Name\nVersion: 0.1\n"
                                "License-Expression: MIT OR Apache-2.0\n"
                                "Project-URL: Homepage, https://example.org/my\n", "x", 0)
    assert new.purl == "pkg:pypi/my-pkg-name@0.1"
    assert new.license == "MIT OR Apache-2.0" and new.homepage == "https://example.org/my"
    old = parse_python_metadata("Name: legacy\nVersion: 2\nLicense: UNKNOWN\n"
                                "Classifier: License :: OSI Approved :: MIT License\n", "x", 0)
    assert old.license == "MIT"
    long_text = parse_python_metadata("Name: t\nVersion: 1\nLicense: Copyright (c) someone\n"
                                      "        Permission is hereby granted ...\n", "x", 0)
    assert long_text.license == ""  # a whole license text is not a license name
    assert parse_python_metadata("Version: 1\n", "x", 0) is None


def test_purl_encoding():
    assert purl("deb", "debian", "libc6", "2.36-9+deb12u4", {"arch": "amd64", "distro": ""}) == \
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    assert purl("pypi", "", "a b", "", {}) == "pkg:pypi/a%20b"


@pytest.mark.parametrize("raw, apk, expression, refs", [
    ("MIT", False, "MIT", {}),
    ("mit", False, "MIT", {}),
    ("Apache 2.0", False, "Apache-2.0", {}),
    ("MIT BSD-3-Clause", True, "MIT AND BSD-3-Clause", {}),
    ("GPL-2.0+ AND MIT", True, "GPL-2.0-or-later AND MIT", {}),
    ("(MIT OR Apache-2.0) AND Zlib", False, "(MIT OR Apache-2.0) AND Zlib", {}),
    ("GPL-2.0-only WITH Linux-syscall-note", True, "GPL-2.0-only WITH Linux-syscall-note", {}),
    ("MIT GPL2+", True, "MIT AND LicenseRef-GPL2-plus", {"LicenseRef-GPL2-plus": "GPL2+"}),
    ("Custom License (v2)", False, "LicenseRef-Custom-License-v2",
     {"LicenseRef-Custom-License-v2": "Custom License (v2)"}),
    ("MIT AND", False, "LicenseRef-MIT-AND", {"LicenseRef-MIT-AND": "MIT AND"}),
    ("", False, "", {}),
])
def test_license_expressions(raw, apk, expression, refs):
    lic = parse_license(raw, spaces_separate=apk)
    assert (lic.expression, lic.refs) == (expression, refs)


def test_diff_packages_with_several_versions():
    from dockyard.analysis.packages import Package

    def p(name, version, kind="python"):
        return Package(name, version, kind, "", "x", 0)

    d = diff_packages([p("a", "1"), p("a", "2"), p("b", "1")], [p("a", "2"), p("c", "1", "deb")])
    assert d == {"added": [{"type": "deb", "name": "c", "version": "1"}],
                 "removed": [{"type": "python", "name": "b", "version": "1"}],
                 "changed": [{"type": "python", "name": "a", "from": "1, 2", "to": "2"}]}
