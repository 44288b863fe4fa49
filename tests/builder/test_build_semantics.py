"""Build semantics beyond the basics: ARG scoping, labels, FROM by digest,
parallel builds on one store."""

from __future__ import annotations

import subprocess
import sys
import os
from pathlib import Path

import pytest
from support import needs_root
from test_build import build, run_output, write

from dockyard import api

pytestmark = needs_root()


def test_meta_arg_invisible_until_redeclared(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        ARG VERSION=1.2
        FROM busybox:latest
        RUN echo "before:[$VERSION]" > /v
        ARG VERSION
        RUN echo "after:[$VERSION]" >> /v
    """})
    image, _ = build(store, ctx)
    assert run_output(store, image, ["cat", "/v"]) == "before:[]\nafter:[1.2]\n"
    image, _ = build(store, ctx, build_args={"VERSION": "2.0"})
    assert run_output(store, image, ["cat", "/v"]) == "before:[]\nafter:[2.0]\n"


def test_labels_inherited_and_overridden(store, base_image, tmp_path):
    parent = write(tmp_path / "p", {"Dockerfile": 'FROM busybox:latest\nLABEL a=1 b=2\n'})
    build(store, parent, tags=["labelled:1"])
    child = write(tmp_path / "c", {"Dockerfile": 'FROM labelled:1\nLABEL b=3 c=4\n'})
    image, _ = build(store, child, labels={"c": "cli"})
    assert image.config["config"]["Labels"] == {"a": "1", "b": "3", "c": "cli"}


def test_from_by_image_id_and_manifest_digest(store, base_image, tmp_path):
    for ref in (base_image.id, f"busybox@{base_image.manifest_digest}"):
        ctx = write(tmp_path / ref.replace(":", "_").replace("@", "_"), {
            "Dockerfile": f"FROM {ref}\nRUN echo ok > /ok\n"})
        image, _ = build(store, ctx)
        assert run_output(store, image, ["cat", "/ok"]) == "ok\n"


def test_entrypoint_clears_inherited_cmd(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest AS a
        CMD ["echo", "from a"]
        FROM a
        ENTRYPOINT ["echo", "ep"]
    """})
    image, _ = build(store, ctx)
    assert image.config["config"].get("Cmd") is None
    assert run_output(store, image) == "ep\n"


def test_copy_errors(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nCOPY a.txt b.txt /dest\n",
                                   "a.txt": "a", "b.txt": "b"})
    with pytest.raises(Exception, match="destination must be a directory and end with a /"):
        build(store, ctx)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY ../outside /x\n"})
    with pytest.raises(Exception, match="outside the build context"):
        build(store, ctx)


_PARALLEL = """
import sys
from dockyard import api
api.build(sys.argv[1], tags=[sys.argv[2]], store=sys.argv[3])
"""


def test_parallel_builds_share_one_store(store, base_image, tmp_path):
    procs = []
    for n in range(3):
        ctx = write(tmp_path / f"ctx{n}", {"Dockerfile": f"""
            FROM busybox:latest
            RUN echo shared > /shared
            RUN echo {n} > /n
        """})
        procs.append(subprocess.Popen([sys.executable, "-c", _PARALLEL, str(ctx), f"par:{n}", str(store.root)],
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for n in range(3):
        image = api.get_image(store, f"par:{n}")
        assert run_output(store, image, ["cat", "/shared", "/n"]) == f"shared\n{n}\n"


def test_dockerfile_specific_ignore_file_wins(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "app.Dockerfile": "FROM busybox:latest\nCOPY . /src/\n",
        "app.Dockerfile.dockerignore": "b.txt\n",
        ".dockerignore": "a.txt\n",
        "a.txt": "a", "b.txt": "b",
    })
    image, _ = build(store, ctx, dockerfile=ctx / "app.Dockerfile")
    out = run_output(store, image, ["ls", "/src"])
    assert "a.txt" in out and "b.txt" not in out


def test_scratch_and_compressed_add(store, tmp_path):
    import bz2
    import io
    import lzma
    import tarfile

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as t:
        info = tarfile.TarInfo("inner/file.txt")
        data = b"packed\n"
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.tar.xz").write_bytes(lzma.compress(payload.getvalue()))
    (ctx / "b.tar.bz2").write_bytes(bz2.compress(payload.getvalue()))
    (ctx / "notatar.gz").write_bytes(b"plain bytes, copied as they are")
    (ctx / "Dockerfile").write_text("FROM scratch\nADD a.tar.xz /xz/\nADD b.tar.bz2 /bz/\nADD notatar.gz /raw/\n")
    image, _ = build(store, ctx)
    from support import image_files

    files = image_files(store, image, tmp_path / "u")
    assert files["xz/inner/file.txt"][0] == "file" and files["bz/inner/file.txt"][0] == "file"
    assert files["raw/notatar.gz"][4] == len(b"plain bytes, copied as they are")
    assert image.config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_xattrs_survive_copy_up_into_a_run_layer(store, tmp_path):
    import os
    import subprocess
    import tarfile

    from support import make_busybox_rootfs

    root = make_busybox_rootfs(tmp_path / "rootfs")
    (root / "data").mkdir()
    (root / "data" / "f").write_text("x")
    os.setxattr(root / "data" / "f", "user.note", b"kept")
    base_tar = tmp_path / "base.tar"
    subprocess.run(["tar", "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-C", str(root),
                    "-cf", str(base_tar), "."], check=True)
    api.import_image(base_tar, "xbase:1", store=store)
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM xbase:1\nRUN chmod 600 /data/f\n"})
    image, _ = build(store, ctx)
    with store.blobs.open(image.layer_digests[-1]) as f, tarfile.open(fileobj=f) as t:
        member = t.getmember("data/f")
    assert member.mode == 0o600
    assert member.pax_headers.get("SCHILY.xattr.user.note") == "kept"


def test_unchanged_context_files_are_not_read_again(store, base_image, tmp_path, monkeypatch):
    import dockyard.builder.context as context_module

    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nCOPY . /src/\n",
                                   "a.txt": "a", "sub/b.txt": "b"})
    first, _ = build(store, ctx)
    rows = store.db.execute("SELECT path, stat, digest FROM filehash ORDER BY path").fetchall()
    assert len(rows) == 3                              # Dockerfile, a.txt, sub/b.txt

    def no_reads(path, size):
        raise AssertionError(f"context file read again: {path}")

    monkeypatch.setattr(context_module, "hash_file", no_reads)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    again, events = build(store, ctx)                  # a new process would see the same
    store.db.set_trace_callback(None)
    assert again.id == first.id and len(events.kinds("cached")) == 1
    assert not [s for s in statements if "filehash" in s and "INSERT" in s.upper()]
    monkeypatch.undo()
    (ctx / "a.txt").write_text("changed")
    changed, events = build(store, ctx)
    assert not events.kinds("cached")


def test_context_stat_cache_sees_every_kind_of_change(store, base_image, tmp_path):
    """Remembered hashes never hide a change: same-size edits with the mtime
    put back, mode changes, added and removed files all miss; a touch or an
    owner change alone (context files are copied as 0:0) keeps the cache."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nCOPY src/ /src/\n",
                                   "src/a.txt": "aaaa", "src/sub/b.txt": "b"})
    a = ctx / "src/a.txt"

    def cached() -> bool:
        image, events = build(store, ctx)
        return len(events.kinds("cached")) == 1

    assert not cached() and cached()
    st = os.stat(a)
    a.write_text("AAAA")                               # same size, same mtime
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not cached()
    assert run_output(store, build(store, ctx)[0], ["cat", "/src/a.txt"]) == "AAAA"
    os.utime(a, (1, 1))
    assert cached()
    os.chown(a, 1234, 1234)
    assert cached()
    os.chmod(a, 0o600)
    assert not cached()
    (ctx / "src/sub/new.txt").write_text("")
    assert not cached()
    (ctx / "src/sub/new.txt").unlink()
    assert cached()                                    # back to a state built before
    (ctx / "src/sub/b.txt").unlink()
    assert not cached()
