"""Helpers for the layer tests: tars built with the standard library (so the
code under test does not check itself), listings, snapshots and a chroot-like
path resolver written independently of dockyard.layer.rootfs."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

MTIME = 1_600_000_000


def make_tar(entries, *, replace: dict[str, str] | None = None, compress: str = "") -> bytes:
    """A tar of [kind, name, content-or-linkname] entries, names written verbatim.
    kind: dir | reg | sym | hard | chr | blk | fifo | wh (a whiteout: empty reg)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compress if compress else "w",
                      format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind, name, arg = entry[:3]
            extra = entry[3] if len(entry) > 3 else {}
            for key, value in (replace or {}).items():
                name = name.replace(key, value)
                arg = arg.replace(key, value) if isinstance(arg, str) else arg
            ti = tarfile.TarInfo(name)
            ti.mtime = extra.get("mtime", MTIME)
            ti.uid = extra.get("uid", 0)
            ti.gid = extra.get("gid", 0)
            ti.pax_headers = extra.get("pax", {})
            data = None
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, extra.get("mode", 0o755)
            elif kind in ("reg", "wh"):
                data = arg.encode() if isinstance(arg, str) else arg
                ti.size, ti.mode = len(data), extra.get("mode", 0o644)
            elif kind == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, arg, 0o777
            elif kind == "hard":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, arg, extra.get("mode", 0o644)
            elif kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = arg
                ti.mode = extra.get("mode", 0o600)
            elif kind == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, extra.get("mode", 0o644)
            else:
                raise ValueError(kind)
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def snapshot(base: Path, exclude: Path | None = None) -> dict[str, tuple]:
    """Everything under `base` (but `exclude`): any write, chmod, chown, utime or
    new hardlink (nlink, ctime) shows up as a difference."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        if exclude is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != exclude]
        for name in dirnames + filenames + ["."]:
            path = Path(dirpath, name)
            if exclude is not None and path == exclude:
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            else:
                extra = ""
            out[os.path.relpath(path, base)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                                st.st_nlink, st.st_mtime_ns, st.st_ctime_ns, extra)
    return out


def listing(root: Path) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, size, content or link target, xattrs, hardlink group)."""
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                extra = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                extra = None
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            try:
                xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                          for k in os.listxattr(path, follow_symlinks=False)}
            except OSError:
                xattrs = {}
            group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                group = inodes.setdefault((st.st_dev, st.st_ino), rel)
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, extra,
                        xattrs, group)
    return out


def in_root(root: Path, path: str, follow_last: bool = True) -> Path:
    """`path` resolved as if `root` were '/': symlinks followed, '..' stopping at root."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink() and (todo or follow_last):
            hops += 1
            assert hops < 64, "symlink loop"
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return root.joinpath(*done)


def same_file(root: Path, a: str, b: str) -> bool:
    sa, sb = os.stat(in_root(root, a)), os.stat(in_root(root, b))
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar]


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return list(tar)


def raw_headers(data: bytes) -> list[dict]:
    """The entries of a tar as written: name bytes (PAX path applied), type,
    whether a PAX header preceded it and its records. Stops at the zero blocks."""
    out: list[dict] = []
    pos, pax = 0, None
    while pos + 512 <= len(data):
        block = data[pos:pos + 512]
        if block == bytes(512):
            break
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        typeflag = block[156:157]
        body = data[pos + 512:pos + 512 + size]
        pos += 512 + -(-size // 512) * 512
        if typeflag == b"x":
            pax, rest = {}, body
            while rest:
                length = int(rest.split(b" ", 1)[0])
                key, _, value = rest[:length].split(b" ", 1)[1][:-1].partition(b"=")
                pax[key] = value
                rest = rest[length:]
            continue
        name = block[0:100].rstrip(b"\0")
        if pax and b"path" in pax:
            name = pax[b"path"]
        out.append({"name": name, "type": typeflag, "pax": pax or {}, "block": block,
                    "uname": block[265:297].rstrip(b"\0"), "gname": block[297:329].rstrip(b"\0"),
                    "magic": block[257:265]})
        pax = None
    return out


def build_tree(root: Path, *, reverse: bool = False, devices: bool = True) -> Path:
    """A tree with every kind of entry a layer carries. `reverse` creates the
    entries in the opposite order (the directory order on disk then differs)."""
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several copy chunks, odd size
    steps = [
        ("dir", "a", 0o755), ("dir", "a/sub", 0o2775), ("dir", "tmp", 0o1777),
        ("file", "a/sub/f", b"hello\n"), ("file", "a-b", b"sibling"), ("file", "a/empty", b""),
        ("file", "big.bin", big), ("file", "setuid", b"#!/bin/sh\n"),
        ("file", "x" * 120, b"long name"), ("file", "caf\u00e9", b"utf-8 name"),
        ("file", b"raw-\xff", b"not utf-8"), ("file", "owned", b"owned"),
        ("file", "bigid", b"big ids"),
        ("sym", "a/link", "sub/f"), ("sym", "abs", "/etc/passwd"), ("sym", "dangling", "nowhere"),
        ("sym", "longlink", "y" * 150),
        ("hard", "a/hard1", "a/sub/f"), ("hard", "hard2", "a/sub/f"),
        ("fifo", "pipe", None),
    ]
    if devices:
        steps += [("chr", "null", (1, 3)), ("blk", "loop", (7, 0))]
    dirs = [s for s in steps if s[0] == "dir"]
    rest = [s for s in steps if s[0] not in ("dir", "hard")]
    if reverse:
        rest.reverse()
    rest += [s for s in steps if s[0] == "hard"]
    root.mkdir(parents=True, exist_ok=True)
    for _, name, mode in dirs:
        (root / name).mkdir()
        os.chmod(root / name, mode)
    for kind, name, arg in rest:
        path = os.path.join(os.fsencode(root), os.fsencode(name))
        if kind == "file":
            with open(path, "wb") as f:
                f.write(arg)
        elif kind == "sym":
            os.symlink(arg, path)
        elif kind == "hard":
            os.link(os.path.join(root, arg), path)
        elif kind == "fifo":
            os.mkfifo(path, 0o640)
        elif kind in ("chr", "blk"):
            os.mknod(path, 0o666 | (stat.S_IFCHR if kind == "chr" else stat.S_IFBLK),
                     os.makedev(*arg))
    os.chmod(root / "setuid", 0o4755)
    os.chmod(root / "a/sub/f", 0o640)
    os.setxattr(root / "a/sub/f", "user.comment", b"\x00\xffbinary\n=")
    os.setxattr(root / "a", "user.dir", b"on a directory")
    if os.geteuid() == 0:
        os.chown(root / "owned", 1234, 5678)
        os.lchown(root / "a/link", 42, 43)
        os.chown(root / "bigid", 3_000_000, 4_000_000)  # past USTAR's 7 octal digits
        os.chown(root / "setuid", 1000, 1000)
        os.chmod(root / "setuid", 0o4755)  # chown cleared it
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root), topdown=False):
        for name in dirnames + filenames + [b"."]:
            os.utime(os.path.join(dirpath, name), ns=(MTIME * 10**9 + 123, MTIME * 10**9 + 500_000_000),
                     follow_symlinks=False)
    return root
