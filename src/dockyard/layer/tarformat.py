"""Tar header encoding: a USTAR block, preceded by a PAX extended header only
when a value does not fit (long or non-ASCII names, big numbers, xattrs).

This is the shape Go's archive/tar writes for BuildKit/containerd layers
(Format PAX, mtime truncated to seconds, no atime/ctime records), so our
layers look like theirs. Built by hand: tarfile's writer looks up user and
group names and pads the archive to 10 KiB records, which Go does not.
"""

from __future__ import annotations

import struct

from dockyard.errors import LayerError

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)  # Go ends a tar with two zero blocks, unpadded

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
XHDTYPE = b"x"

XATTR_PREFIX = "SCHILY.xattr."


def padding(size: int) -> bytes:
    """Zero bytes that round `size` up to a whole block."""
    return bytes(-size % BLOCK)


def _octal(value: int, width: int) -> bytes | None:
    """`value` as a NUL-terminated octal field of `width` bytes, or None if it does not fit."""
    digits = width - 1
    if value < 0 or value >= 8**digits:
        return None
    return b"%0*o\0" % (digits, value)


def _ascii(value: bytes, width: int) -> bytes:
    # What the plain header keeps of a name a PAX record carries in full.
    if len(value) <= width and value.isascii():
        return value
    return bytes(c for c in value if c < 0x80)[:width]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:  # the length counts its own digits
        length = len(b"%d" % length) + len(body)
    return b"%d" % length + body


# name mode uid gid size mtime chksum type linkname magic+version uname gname
# devmajor devminor prefix, padded to 512 (struct pads short strings with NULs).
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


def _block(name: bytes, mode: int, uid: bytes, gid: bytes, size: bytes, mtime: bytes,
           typeflag: bytes, linkname: bytes, devmajor: bytes, devminor: bytes) -> bytes:
    fields = [name, b"%07o\0" % (mode & 0o7777), uid, gid, size, mtime, b" " * 8, typeflag,
              linkname, b"ustar\x0000", b"", b"", devmajor, devminor, b""]
    block = _USTAR.pack(*fields)
    fields[6] = b"%06o\0 " % sum(block)
    return _USTAR.pack(*fields)


def header(name: bytes, *, mode: int, uid: int = 0, gid: int = 0, size: int = 0,
           mtime: int = 0, typeflag: bytes = REGTYPE, linkname: bytes = b"",
           devmajor: int = 0, devminor: int = 0,
           xattrs: dict[bytes, bytes] | None = None) -> bytes:
    """The header block(s) of one entry; the caller writes the data and its padding."""
    pax: dict[bytes, bytes] = {}
    if len(name) > 100 or not name.isascii():
        pax[b"path"] = name
    if len(linkname) > 100 or not linkname.isascii():
        pax[b"linkpath"] = linkname
    numbers: dict[bytes, bytes] = {}
    for key, value, width in ((b"uid", uid, 8), (b"gid", gid, 8), (b"size", size, 12),
                              (b"mtime", mtime, 12)):
        field = _octal(value, width)
        if field is None:
            pax[key] = b"%d" % value
            field = b"0" * (width - 1) + b"\0"
        numbers[key] = field
    major, minor = _octal(devmajor, 8), _octal(devminor, 8)
    if major is None or minor is None:
        raise LayerError(f"device number {devmajor}:{devminor} of {name!r} does not fit in a tar header")
    for key in sorted(xattrs or ()):
        pax[XATTR_PREFIX.encode() + key] = xattrs[key]  # type: ignore[index]

    main = _block(_ascii(name, 100), mode, numbers[b"uid"], numbers[b"gid"], numbers[b"size"],
                  numbers[b"mtime"], typeflag, _ascii(linkname, 100), major, minor)
    if not pax:
        return main
    records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    # Named like Go's writer does it: <dir>/PaxHeaders.0/<base>.
    stripped = name.rstrip(b"/")
    head, _, base = stripped.rpartition(b"/")
    pax_name = (head + b"/" if head else b"") + b"PaxHeaders.0/" + base
    zero8, zero12 = b"0000000\0", b"00000000000\0"
    ext = _block(_ascii(pax_name, 100), 0o644, zero8, zero8, b"%011o\0" % len(records),
                 zero12, XHDTYPE, b"", zero8, zero8)
    return ext + records + padding(len(records)) + main
