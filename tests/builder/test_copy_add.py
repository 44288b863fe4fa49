"""COPY/ADD features newer than Docker 20.10's frontend, checked one by one:
heredocs, --link, --parents, --exclude, ADD of URLs (with --checksum), of git
repositories, and --unpack. Docker is not the oracle here (its BuildKit 0.8
has none of these); the expectations follow the Dockerfile reference."""

from __future__ import annotations

import calendar
import gzip
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from support import image_files, layer_names, needs_root, unpack_image
from test_build import build, write

from dockyard.builder.fetch import parse_checksum, parse_git_ref, url_filename
from dockyard.errors import DockyardError

pytestmark = needs_root()


def history(image) -> list[str]:
    return [h.get("created_by", "") for h in image.config["history"]]


def last_layer(store, image) -> list[str]:
    return sorted(n.rstrip("/") for n in layer_names(store, image.layer_digests[-1]))


def layer_member(store, image, name: str) -> tarfile.TarInfo:
    with store.blobs.open(image.layer_digests[-1]) as f, tarfile.open(fileobj=io.BytesIO(f.read())) as t:
        return t.getmember(name)


# -- heredocs ------------------------------------------------------------------

def test_copy_heredoc_file_mode_owner_and_history(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "COPY <<EOF /etc/motd\n"
        "hello\n"
        "  world\n"
        "EOF\n"
        "COPY <<a.txt <<b.txt /docs/\n"
        "first\n"
        "a.txt\n"
        "second\n"
        "b.txt\n"
        "ADD <<EOF /added\n"
        "added\n"
        "EOF\n")})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    assert files["etc/motd"][:5] == ("file", "0o644", 0, 0, len("hello\n  world\n"))
    root = tmp_path / "out"
    assert (root / "etc/motd").read_text() == "hello\n  world\n"
    assert (root / "docs/a.txt").read_text() == "first\n"
    assert (root / "docs/b.txt").read_text() == "second\n"
    assert files["docs/b.txt"][:4] == ("file", "0o644", 0, 0)
    assert (root / "added").read_text() == "added\n"
    assert history(image)[-3:] == ["COPY <<EOF /etc/motd # buildkit",
                                   "COPY <<a.txt <<b.txt /docs/ # buildkit",
                                   "ADD <<EOF /added # buildkit"]


def test_heredoc_expansion_quoting_and_tab_stripping(store, base_image, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "ARG NAME=world\n"
        "ENV GREETING=hello\n"
        "COPY <<EOF /expanded\n"
        "$GREETING ${NAME} \"quoted\" 'single' \\$ESCAPED ${UNSET:-fallback}\n"
        "EOF\n"
        "COPY <<'EOF' /raw\n"
        "$GREETING ${NAME}\n"
        "EOF\n"
        "COPY <<\"EOF\" /raw2\n"
        "$GREETING\n"
        "EOF\n"
        "COPY <<-EOF /stripped\n"
        "\t\tindented $NAME\n"
        "\tEOF\n")
    image, _ = build(store, ctx, build_args={"NAME": "there"})
    root = unpack_image(store, image, tmp_path / "out")
    assert (root / "expanded").read_text() == "hello there \"quoted\" 'single' $ESCAPED fallback\n"
    assert (root / "raw").read_text() == "$GREETING ${NAME}\n"
    assert (root / "raw2").read_text() == "$GREETING\n"
    assert (root / "stripped").read_text() == "indented there\n"


def test_heredoc_chown_chmod_and_destination_rules(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "WORKDIR /app\n"
        "COPY --chown=app:staff --chmod=755 <<run.sh bin/\n"
        "#!/bin/sh\n"
        "echo hi\n"
        "run.sh\n"), "x.txt": "x"})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    assert files["app/bin/run.sh"][:4] == ("file", "0o755", 1000, 50)
    assert files["app/bin"][:4] == ("dir", "0o755", 1000, 50)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY x.txt <<EOF /notadir\nx\nEOF\n"})
    with pytest.raises(DockyardError, match="destination must be a directory"):
        build(store, ctx)


def test_heredoc_content_keys_the_cache(store, base_image, tmp_path):
    df = "FROM busybox:latest\nARG V=1\nCOPY <<EOF /v\n$V\nEOF\n"
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    first, _ = build(store, ctx)
    again, ev = build(store, ctx)
    assert again.diff_ids == first.diff_ids and len(ev.kinds("cached")) == 1
    other, ev = build(store, ctx, build_args={"V": "2"})
    assert other.diff_ids[-1] != first.diff_ids[-1] and not ev.kinds("cached")


# -- COPY --link ----------------------------------------------------------------

def test_copy_link_same_files_and_independent_of_parent(store, base_image, tmp_path):
    files = {"app/main.py": "print(1)\n", "app/lib/util.py": "x = 1\n", "conf.ini": "[a]\n"}
    plain = write(tmp_path / "plain", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo one > /marker\n"
        "COPY app /srv/app/\nCOPY --chown=1000:1000 conf.ini /opt/conf/conf.ini\n"), **files})
    linked = write(tmp_path / "linked", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo one > /marker\n"
        "COPY --link app /srv/app/\nCOPY --link --chown=1000:1000 conf.ini /opt/conf/conf.ini\n"), **files})
    a, _ = build(store, plain)
    b, _ = build(store, linked)
    fa, fb = image_files(store, a, tmp_path / "a"), image_files(store, b, tmp_path / "b")
    assert fa == fb
    assert history(b)[-2:] == ["COPY app /srv/app/ # buildkit", "COPY conf.ini /opt/conf/conf.ini # buildkit"]
    # the linked layer holds only what was copied, with the destination's parents
    assert last_layer(store, b) == ["opt", "opt/conf", "opt/conf/conf.ini"]
    # a different parent chain: the linked steps are cache hits with the same layers
    write(linked, {"Dockerfile": (
        "FROM busybox:latest\nRUN echo two > /marker\n"
        "COPY --link app /srv/app/\nCOPY --link --chown=1000:1000 conf.ini /opt/conf/conf.ini\n")})
    c, ev = build(store, linked)
    assert len(ev.kinds("cached")) == 2
    assert c.diff_ids[-2:] == b.diff_ids[-2:] and c.diff_ids[-3] != b.diff_ids[-3]
    assert (unpack_image(store, c, tmp_path / "c") / "marker").read_text() == "two\n"
    # the plain COPY after a changed RUN is rebuilt
    write(plain, {"Dockerfile": (
        "FROM busybox:latest\nRUN echo two > /marker\n"
        "COPY app /srv/app/\nCOPY --chown=1000:1000 conf.ini /opt/conf/conf.ini\n")})
    _, ev = build(store, plain)
    assert len(ev.kinds("cached")) == 1      # only the RUN, built by the linked image already


def test_copy_link_does_not_follow_parent_symlinks_and_from_stage(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS src\nRUN mkdir -p /out && echo built > /out/bin\n"
        "FROM busybox:latest\nRUN mkdir /real && ln -s /real /dest\n"
        "COPY --link --from=src /out/bin /dest/bin\n"
        "COPY --link f.txt /dest2/\n"), "f.txt": "f"})
    image, _ = build(store, ctx)
    root = unpack_image(store, image, tmp_path / "out")
    # the layer made its own /dest directory, which replaces the symlink
    assert (root / "dest").is_dir() and not (root / "dest").is_symlink()
    assert (root / "dest/bin").read_text() == "built\n"
    assert (root / "dest2/f.txt").read_text() == "f"


# -- COPY --parents ---------------------------------------------------------------

def test_copy_parents_and_pivot(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "COPY ./x/a.txt ./y/a.txt /no_parents/\n"
        "COPY --parents ./x/a.txt ./y/a.txt /parents/\n"
        "COPY --parents ./x/./sub/*.txt /pivot/\n"
        "COPY --parents x/sub /dirs\n"
        "COPY --parents */nomatch*.bin /empty/\n"),
        "x/a.txt": "xa", "y/a.txt": "ya", "x/sub/b.txt": "b", "x/sub/c.md": "c"})
    os.chmod(ctx / "x", 0o750)
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    root = tmp_path / "out"
    assert sorted(p for p in files if p.startswith("no_parents")) == ["no_parents", "no_parents/a.txt"]
    assert (root / "parents/x/a.txt").read_text() == "xa"
    assert (root / "parents/y/a.txt").read_text() == "ya"
    assert files["parents/x"][:4] == ("dir", "0o750", 0, 0)       # the source dir's mode
    assert sorted(p for p in files if p.startswith("pivot")) == ["pivot", "pivot/sub", "pivot/sub/b.txt"]
    assert sorted(p for p in files if p.startswith("dirs")) == [
        "dirs", "dirs/x", "dirs/x/sub", "dirs/x/sub/b.txt", "dirs/x/sub/c.md"]
    assert files["empty"][0] == "dir"
    assert "COPY --parents ./x/a.txt ./y/a.txt /parents/ # buildkit" in history(image)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nCOPY --parents x/missing.txt /p/\n"})
    with pytest.raises(DockyardError, match="not found"):
        build(store, ctx)


# -- COPY --exclude -----------------------------------------------------------------

def test_copy_exclude_patterns(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "COPY --exclude=*.txt hom* /mydir/\n"
        "COPY --exclude=*.md --exclude=sub/skip dir /d/\n"
        "COPY --exclude=*.log --exclude=!keep.log logs /logs/\n"
        "COPY --exclude=*.mp3 dir* /w/\n"
        "COPY --exclude=* dir* /none/\n"),
        "home.txt": "t", "home.md": "m", "homer/x.txt": "x",
        "dir/a.md": "a", "dir/b.c": "b", "dir/sub/skip/s": "s", "dir/sub/c.md": "c", "dir/sub/keep": "k",
        "dir2/song.mp3": "mp3", "dir2/film.mpeg": "mpeg",
        "logs/a.log": "a", "logs/keep.log": "k", "logs/x.txt": "x"})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")

    def under(prefix):
        return sorted(p[len(prefix) + 1:] for p in files if p.startswith(prefix + "/"))

    # a wildcard match is itself subject to the patterns; a directory's
    # contents are matched relative to that directory
    assert under("mydir") == ["home.md"]          # homer/x.txt is x.txt below homer
    assert under("d") == ["b.c", "sub", "sub/c.md", "sub/keep"]   # '*' does not cross '/'
    assert under("logs") == ["keep.log", "x.txt"]
    assert under("w") == ["a.md", "b.c", "film.mpeg", "sub", "sub/c.md", "sub/keep", "sub/skip", "sub/skip/s"]
    assert files["none"][0] == "dir" and under("none") == []
    # changing an excluded file keeps the cache
    (ctx / "home.txt").write_text("changed")
    (ctx / "logs/a.log").write_text("changed")
    _, ev = build(store, ctx)
    assert len(ev.kinds("cached")) == 5


def test_parents_exclude_and_link_with_from_stage(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS build\n"
        "RUN mkdir -p /src/app/lib /src/app/tests && echo m > /src/app/main.py && echo l > /src/app/lib/l.py"
        " && echo t > /src/app/tests/t.py && echo n > /src/app/notes.md && chown -R 1000:50 /src/app\n"
        "FROM busybox:latest\n"
        "COPY --from=build --parents /src/./app/*.py /p/\n"
        "COPY --from=build --exclude=tests --exclude=*.md /src/app /x/\n"
        "COPY --link --chmod=700 --from=build /src/app/main.py /linked/\n")})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")

    def under(prefix):
        return sorted(p[len(prefix) + 1:] for p in files if p.startswith(prefix + "/"))

    assert under("p") == ["app", "app/main.py"]
    assert files["p/app"][:4] == ("dir", "0o755", 1000, 50)        # --from keeps owners
    assert under("x") == ["lib", "lib/l.py", "main.py"]
    assert files["linked/main.py"][:4] == ("file", "0o700", 1000, 50)


def test_link_with_chmod_is_a_plain_copy(store, base_image, tmp_path):
    # BuildKit only links when --chmod is not given; the copy then depends on its parent
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nRUN echo 1 > /m\n"
                                                 "COPY --link --chmod=700 f /f\nCOPY --link f /g\n", "f": "f"})
    build(store, ctx)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nRUN echo 2 > /m\n"
                              "COPY --link --chmod=700 f /f\nCOPY --link f /g\n"})
    _, ev = build(store, ctx)
    assert len(ev.kinds("cached")) == 1    # only the COPY without --chmod


def test_copy_follows_image_symlinks_inside_the_rootfs_only(store, base_image, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "hello").write_text("host\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        f"RUN ln -s {victim} /app && mkdir -p /real && ln -s ../real /rel\n"
        "COPY src/ /\n"),
        "src/app/hello": "image\n", "src/app/sub/new": "new\n", "src/rel/r.txt": "r\n"})
    image, _ = build(store, ctx)
    assert sorted(os.listdir(victim)) == ["hello"] and (victim / "hello").read_text() == "host\n"
    root = unpack_image(store, image, tmp_path / "out")
    assert (root / "real/r.txt").read_text() == "r\n"        # followed inside the rootfs
    # /app pointed at nothing inside the rootfs: it is replaced by a directory
    assert (root / "app").is_dir() and not (root / "app").is_symlink()
    assert (root / "app/hello").read_text() == "image\n" and (root / "app/sub/new").read_text() == "new\n"


def test_copy_of_many_files_keeps_each_ones_content_and_metadata(store, base_image, tmp_path):
    # enough files that they are placed by several threads (builder/workers.py)
    ctx = tmp_path / "ctx"
    want = {}
    for d in range(4):
        for f in range(150):
            p = ctx / f"src/d{d}/f{f:03d}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(f * 37 % 5000))
            os.chmod(p, (0o600, 0o644, 0o755, 0o4755)[f % 4])
            os.utime(p, ns=(0, (1_600_000_000 + d * 1000 + f) * 10**9))
            want[f"data/d{d}/f{f:03d}"] = p
    os.symlink("f001", ctx / "src/d0/link")
    os.link(ctx / "src/d1/f002", ctx / "src/d1/hard")
    (ctx / "src/zalias").mkdir()                    # the image makes it a symlink to /data/d2
    (ctx / "src/zalias/f010").write_text("alias\n")
    (ctx / "src/zalias/extra").write_text("extra\n")
    (ctx / "src/d3/f005").unlink()
    (ctx / "src/d3/f005").mkdir()                   # a directory where the image has a file
    (ctx / "src/d3/f005/inside").write_text("in\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "RUN mkdir -p /data/d2 /data/d3 && echo old > /data/d2/f011 && echo x > /data/d3/f005 "
        "&& ln -s /data/d2 /data/zalias\n"
        "COPY src/ /data/\n")
    image, _ = build(store, ctx)
    root = unpack_image(store, image, tmp_path / "out")
    for rel, src in want.items():
        if rel in ("data/d3/f005", "data/d2/f010"):
            continue
        got, st = root / rel, os.stat(src)
        assert got.read_bytes() == src.read_bytes(), rel
        assert os.stat(got).st_mode == st.st_mode, rel
        assert os.stat(got).st_mtime == st.st_mtime, rel
        assert (os.stat(got).st_uid, os.stat(got).st_gid) == (0, 0), rel
    assert (root / "data/d2/f011").read_bytes() == (ctx / "src/d2/f011").read_bytes()
    # zalias/ is copied last and lands in /data/d2 through the image's symlink
    assert (root / "data/zalias").is_symlink()
    assert (root / "data/d2/f010").read_text() == "alias\n" and (root / "data/d2/extra").read_text() == "extra\n"
    assert os.readlink(root / "data/d0/link") == "f001"
    assert os.path.samefile(root / "data/d1/hard", root / "data/d1/f002")
    assert (root / "data/d3/f005/inside").read_text() == "in\n"


def test_copy_of_many_files_stops_at_a_directory_in_the_way(store, base_image, tmp_path):
    ctx = tmp_path / "ctx"
    for f in range(300):
        p = ctx / f"src/f{f:03d}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{f}\n")
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nRUN mkdir -p /data/f150/sub\nCOPY src/ /data/\n")
    with pytest.raises(DockyardError, match="cannot replace directory f150 with a file"):
        build(store, ctx)


def test_add_of_a_named_pipe_does_not_sniff_it(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox:latest\nADD fifo /f\n"})
    os.mkfifo(ctx / "fifo")
    image, _ = build(store, ctx)
    assert layer_member(store, image, "f").isfifo()


# -- ADD <url> ------------------------------------------------------------------------

class _Server:
    def __init__(self, root: Path):
        self.root = root
        self.hits: list[str] = []
        hits, directory = self.hits, str(root)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=directory, **kw)

            def do_GET(self):
                hits.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = _Server(root)
    yield srv
    srv.close()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def test_add_url_name_mode_mtime_and_no_unpack(store, base_image, tmp_path, server):
    (server.root / "file.txt").write_text("remote\n")
    stamp = calendar.timegm((2020, 1, 2, 3, 4, 5))
    os.utime(server.root / "file.txt", (stamp, stamp))
    (server.root / "pkg.tar.gz").write_bytes(_tar_gz({"inside.txt": b"in"}))
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        f"ADD {server.url}/file.txt /dl/\n"
        f"ADD {server.url}/file.txt /named\n"
        f"ADD --chown=app --chmod=640 {server.url}/file.txt /owned\n"
        f"ADD {server.url}/pkg.tar.gz /archives/\n"
        f"ADD --unpack=true {server.url}/pkg.tar.gz /unpacked/\n")})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    assert files["dl/file.txt"][:5] == ("file", "0o600", 0, 0, 7)
    assert files["named"][:2] == ("file", "0o600")
    assert files["owned"][:4] == ("file", "0o640", 1000, 1000)
    assert files["archives/pkg.tar.gz"][0] == "file"
    assert (tmp_path / "out/unpacked/inside.txt").read_text() == "in"
    assert "unpacked/pkg.tar.gz" not in files
    assert os.stat(tmp_path / "out/dl/file.txt").st_mtime == stamp
    assert f"ADD {server.url}/file.txt /dl/ # buildkit" in history(image)


def test_add_url_cache_follows_content_and_checksum_skips_download(store, base_image, tmp_path, server):
    (server.root / "f").write_text("v1")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox:latest\nADD {server.url}/f /f\n"})
    first, _ = build(store, ctx)
    again, ev = build(store, ctx)
    assert len(server.hits) == 2                      # downloaded each time...
    assert len(ev.kinds("cached")) == 1 and again.diff_ids == first.diff_ids   # ...and keyed by content
    (server.root / "f").write_text("v2")
    changed, ev = build(store, ctx)
    assert not ev.kinds("cached") and changed.diff_ids[-1] != first.diff_ids[-1]
    assert (unpack_image(store, changed, tmp_path / "o") / "f").read_text() == "v2"

    digest = hashlib.sha256(b"v2").hexdigest()
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nADD --checksum=sha256:{digest} {server.url}/f /f\n"})
    build(store, ctx)
    hits = len(server.hits)
    _, ev = build(store, ctx)
    assert len(ev.kinds("cached")) == 1 and len(server.hits) == hits   # no download at all

    bad = hashlib.sha256(b"other").hexdigest()
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nADD --checksum=sha256:{bad} {server.url}/f /f\n"})
    with pytest.raises(DockyardError, match="checksum mismatch"):
        build(store, ctx)


def test_url_and_checksum_errors(store, base_image, tmp_path, server):
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox:latest\nADD {server.url}/missing /x\n",
                                   "local.txt": "l"})
    with pytest.raises(DockyardError, match="404"):
        build(store, ctx)
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nCOPY {server.url}/x /x\n"})
    with pytest.raises(DockyardError, match="source can't be a URL for COPY"):
        build(store, ctx)
    write(ctx, {"Dockerfile": "FROM busybox:latest\nADD --checksum=sha256:" + "0" * 64 + " local.txt /x\n"})
    with pytest.raises(DockyardError, match="checksum requires HTTP"):
        build(store, ctx)
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nADD --checksum=md5:abc {server.url}/x /x\n"})
    with pytest.raises(DockyardError, match="invalid checksum"):
        build(store, ctx)


def test_url_helpers():
    assert url_filename("http://h/a/b.tar.gz?x=1") == "b.tar.gz"
    assert url_filename("http://h") == "__unnamed__"
    assert url_filename("http://h/") == "__unnamed__"
    assert parse_checksum("sha256:" + "a" * 64) == ("sha256", "a" * 64)
    with pytest.raises(DockyardError):
        parse_checksum("sha256:abc")
    assert parse_git_ref("https://example.com/r.git#v1:sub/dir").ref == "v1"
    assert parse_git_ref("https://example.com/r.git#v1:sub/dir").subdir == "sub/dir"
    assert parse_git_ref("https://example.com/file.tar.gz") is None
    assert parse_git_ref("git@github.com:o/r.git").remote == "git@github.com:o/r.git"
    assert parse_git_ref("./relative") is None and parse_git_ref("github.com/o/r") is None


# -- ADD --unpack on local archives -------------------------------------------------

def test_add_unpack_flag_on_local_archive(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        "ADD pkg.tar.gz /default/\n"
        "ADD --unpack=false pkg.tar.gz /kept/\n"
        "COPY pkg.tar.gz /copied/\n")})
    (ctx / "pkg.tar.gz").write_bytes(_tar_gz({"inside.txt": b"in"}))
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    assert "default/inside.txt" in files and "default/pkg.tar.gz" not in files
    assert "kept/pkg.tar.gz" in files and "kept/inside.txt" not in files
    assert "copied/pkg.tar.gz" in files


# -- ADD <git> ------------------------------------------------------------------------

def _git(cwd, *args):
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q")
    (work / "README").write_text("v1\n")
    (work / "sub").mkdir()
    (work / "sub/tool.sh").write_text("#!/bin/sh\necho tool\n")
    os.chmod(work / "sub/tool.sh", 0o755)
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "one")
    _git(work, "tag", "-a", "v1", "-m", "v1")
    first = _git(work, "rev-parse", "HEAD")
    (work / "README").write_text("v2\n")
    _git(work, "commit", "-q", "-am", "two")
    bare = tmp_path / "srv" / "repo.git"
    bare.parent.mkdir()
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    _git(bare, "update-server-info")
    return {"work": work, "bare": bare, "first": first}


def test_add_git_ref_subdir_and_keep_git_dir(store, base_image, tmp_path, repo):
    url = f"file://{repo['bare']}"
    ctx = write(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox:latest\n"
        f"ADD {url} /head/\n"
        f"ADD {url}#v1 /tag/\n"
        f"ADD {url}#v1:sub /sub/\n"
        f"ADD --keep-git-dir=true {url}#main /withgit/\n"
        f"ADD --checksum={repo['first'][:12]} {url}#v1 /pinned/\n")})
    image, _ = build(store, ctx)
    files = image_files(store, image, tmp_path / "out")
    root = tmp_path / "out"
    assert (root / "head/README").read_text() == "v2\n"
    assert (root / "tag/README").read_text() == "v1\n"
    assert not any(p.startswith("head/.git") for p in files)
    assert sorted(p for p in files if p.startswith("sub/")) == ["sub/tool.sh"]
    assert files["sub/tool.sh"][:4] == ("file", "0o755", 0, 0)
    assert files["head/README"][:4] == ("file", "0o644", 0, 0)
    assert files["withgit/.git"][0] == "dir"
    assert (root / "pinned/README").read_text() == "v1\n"
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nADD --checksum=deadbeef {url}#v1 /x/\n"})
    with pytest.raises(DockyardError, match="checksum mismatch"):
        build(store, ctx)
    write(ctx, {"Dockerfile": f"FROM busybox:latest\nADD {url}#nosuchbranch /x/\n"})
    with pytest.raises(DockyardError, match="nosuchbranch"):
        build(store, ctx)


def test_add_git_over_dumb_http_keyed_by_commit(store, base_image, tmp_path, repo):
    srv = _Server(repo["bare"].parent)
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM busybox:latest\nADD {srv.url}/repo.git#main /src/\n"})
        first, _ = build(store, ctx)
        assert (unpack_image(store, first, tmp_path / "a") / "src/README").read_text() == "v2\n"
        _, ev = build(store, ctx)
        assert len(ev.kinds("cached")) == 1
        (repo["work"] / "README").write_text("v3\n")
        _git(repo["work"], "commit", "-q", "-am", "three")
        _git(repo["work"], "push", "-q", str(repo["bare"]), "main")
        _git(repo["bare"], "update-server-info")
        third, ev = build(store, ctx)
        assert not ev.kinds("cached")
        assert (unpack_image(store, third, tmp_path / "b") / "src/README").read_text() == "v3\n"
    finally:
        srv.close()
