"""One streaming pass over an image's layer tars, bottom to top.

Nothing is extracted. While the layers are read, the merged view of the
filesystem (what a container would see) is kept as a map of path -> Entry,
with whiteouts (``.wh.NAME``) and opaque markers (``.wh..wh..opq``) applied
the way the layer appliers do: a layer's whiteouts act on the layers below
it only. Each Entry remembers the layer that wrote it and, when a later
layer overwrote or deleted it, which layer did and how; the bytes of such
entries are the image's wasted space.

History entries without ``empty_layer`` are matched to the layers in order,
which gives each layer the instruction that made it.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Container
from dataclasses import dataclass, field

from ..errors import LayerError
from ..layer.compress import compression_of, open_layer
from ..layer.rootfs import clean
from ..store import Image, Store

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CAPTURE_LIMIT = 32 << 20  # never keep more than this of one file in memory
_CHUNK = 1 << 20

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}


@dataclass(slots=True, eq=False)
class Entry:
    """One path as one layer wrote it."""

    path: str
    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    size: int
    mode: int
    uid: int
    gid: int
    link: str
    layer: int
    digest: str | None = None  # sha256 hex of the contents, when asked for
    data: bytes | None = None  # the contents, for files the caller captures
    gone: int | None = None  # index of the layer that replaced or deleted it
    how: str = ""  # "overwritten" or "removed"
    implicit: bool = False  # a parent directory no tar entry named


@dataclass(slots=True)
class LayerScan:
    index: int
    digest: str
    diff_id: str
    size: int  # bytes of the layer tar
    created_by: str = ""
    created: str = ""
    comment: str = ""
    content: int = 0  # bytes of file contents in this layer
    added: int = 0
    changed: int = 0
    removed: int = 0
    entries: list[Entry] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)

    @property
    def wasted(self) -> int:
        return sum(e.size for e in self.entries if e.gone is not None)

    @property
    def instruction(self) -> str:
        """created_by without BuildKit's marker, or the comment when there is none."""
        text = self.created_by.strip()
        if text.endswith("# buildkit"):
            text = text[: -len("# buildkit")].rstrip()
        return text or self.comment


@dataclass
class ImageScan:
    image: Image
    layers: list[LayerScan]
    files: dict[str, Entry]  # the merged view, without the root

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def content(self) -> int:
        return sum(layer.content for layer in self.layers)

    @property
    def wasted(self) -> int:
        return sum(layer.wasted for layer in self.layers)

    @property
    def efficiency(self) -> float:
        """1 - wasted / content: 1.0 when nothing shipped is later thrown away."""
        total = self.content
        return 1.0 if total == 0 else max(0.0, 1.0 - self.wasted / total)

    def wasted_entries(self) -> list[Entry]:
        out = [e for layer in self.layers for e in layer.entries if e.gone is not None and e.size]
        out.sort(key=lambda e: (-e.size, e.path, e.layer))
        return out


def layer_history(config: dict) -> list[dict]:
    """The history entries that made layers, in layer order."""
    return [h for h in config.get("history") or [] if not h.get("empty_layer")]


def scan_image(store: Store, image: Image, *, capture: Callable[[str], bool] | None = None,
               hash_layers: Container[int] | bool = False) -> ImageScan:
    """Read every layer of ``image`` once. Contents of regular files whose path
    ``capture`` accepts are kept (Entry.data); files of the layers whose index
    is in ``hash_layers`` (or all, given True) get a sha256 (Entry.digest)."""
    digests = image.layer_digests
    diff_ids = image.diff_ids
    history = layer_history(image.config)
    view = _View()
    layers = []
    for index, digest in enumerate(digests):
        hist = history[index] if index < len(history) else {}
        layer = LayerScan(index=index, digest=digest,
                          diff_id=diff_ids[index] if index < len(diff_ids) else digest,
                          size=store.blobs.size(digest), created_by=hist.get("created_by", ""),
                          created=hist.get("created", ""), comment=hist.get("comment", ""))
        want_hash = hash_layers is True or (hash_layers is not False and index in hash_layers)
        with store.blobs.open(digest) as blob:
            members = read_layer(blob, capture=capture, hashing=want_hash, index=index)
        view.apply(layer, members)
        layers.append(layer)
    return ImageScan(image=image, layers=layers, files=view.files)


def read_layer(blob, *, index: int = 0, capture: Callable[[str], bool] | None = None,
               hashing: bool = False, only: Container[str] | None = None) -> list[Entry]:
    """The entries of one layer tar, in order; whiteouts keep their names.
    With ``only``, just those paths are returned (used to hash a few files)."""
    out: list[Entry] = []
    # A plain tar in a seekable file (the store's blobs) is read by seeking past
    # contents that are not wanted; anything else is decompressed as a stream.
    seekable = _seekable(blob)
    reader = blob if seekable else open_layer(blob)
    try:
        if not seekable and not reader.peek(1):  # type: ignore[union-attr]
            return out  # an empty blob is an empty layer
        if seekable and blob.seek(0, 2) == 0:
            return out
        if seekable:
            blob.seek(0)
        with tarfile.open(fileobj=reader, mode="r:" if seekable else "r|") as tar:
            for member in tar:
                parts, climbed = clean(member.name)
                if climbed or not parts:
                    continue  # the appliers refuse or skip these too
                path = "/".join(parts)
                if only is not None and path not in only:
                    continue
                kind = _KINDS.get(member.type, "file" if member.isreg() else "other")
                link = member.linkname
                if kind == "hardlink":
                    link = "/".join(clean(link)[0])
                entry = Entry(path, kind, member.size if kind == "file" else 0, member.mode,
                              member.uid, member.gid, link, index)
                if kind == "file" and (hashing or (capture is not None and capture(path))):
                    _read_contents(tar, member, entry, keep=capture is not None and capture(path),
                                   hashing=hashing)
                out.append(entry)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise LayerError(f"unreadable layer tar: {exc}") from None
    finally:
        if not seekable:
            reader.close()
    return out


def _seekable(blob) -> bool:
    """Whether ``blob`` is an uncompressed tar we can seek in (left at offset 0)."""
    try:
        if not blob.seekable():
            return False
        start = blob.tell()
        head = blob.read(6)
        blob.seek(start)
    except (AttributeError, OSError, ValueError):
        return False
    return start == 0 and compression_of(head) is None


def _read_contents(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry, *,
                   keep: bool, hashing: bool) -> None:
    f = tar.extractfile(member)
    if f is None:
        return
    h = hashlib.sha256()
    kept = bytearray()
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        h.update(chunk)
        if keep and len(kept) < CAPTURE_LIMIT:
            kept += chunk[: CAPTURE_LIMIT - len(kept)]
    if hashing:
        entry.digest = h.hexdigest()
    if keep:
        entry.data = bytes(kept)


class _View:
    """The merged filesystem while layers are applied; children are indexed
    so a whiteout of a big directory costs what the directory holds."""

    def __init__(self) -> None:
        self.files: dict[str, Entry] = {}
        self.children: dict[str, set[str]] = {"": set()}

    def apply(self, layer: LayerScan, members: list[Entry]) -> None:
        index = layer.index
        removed_now: set[str] = set()
        # whiteouts first: they hide what the layers below wrote, never this layer's own
        for m in members:
            parent, _, base = m.path.rpartition("/")
            if base == OPAQUE:
                for child in list(self.children.get(parent, ())):
                    removed_now.update(self._remove(child, index, "removed"))
            elif base.startswith(WHITEOUT) and not base.startswith(".wh..wh."):
                target = f"{parent}/{base[len(WHITEOUT):]}" if parent else base[len(WHITEOUT):]
                removed_now.update(self._remove(target, index, "removed"))
        for m in members:
            base = m.path.rpartition("/")[2]
            if base.startswith(WHITEOUT):
                continue
            layer.entries.append(m)
            layer.content += m.size
            old = self.files.get(m.path)
            if old is None:
                if m.path in removed_now:
                    removed_now.discard(m.path)
                    layer.changed += 1
                else:
                    layer.added += 1
            else:
                if not (old.kind == "dir" and m.kind == "dir"):
                    layer.changed += 1
                if old.kind == "dir" and m.kind != "dir":
                    for child in list(self.children.get(m.path, ())):
                        removed_now.update(self._remove(child, index, "removed"))
                old.gone, old.how = index, "overwritten"
            if m.kind == "hardlink" and m.link in self.files:
                m.digest = self.files[m.link].digest
            self._put(m, index)
        layer.removed = len(removed_now)
        layer.removed_paths = sorted(removed_now)

    def _put(self, entry: Entry, index: int) -> None:
        parent = entry.path.rpartition("/")[0]
        if parent and parent not in self.files:
            self._put(Entry(parent, "dir", 0, 0o755, 0, 0, "", index, implicit=True), index)
        self.files[entry.path] = entry
        self.children.setdefault(parent, set()).add(entry.path)
        if entry.kind == "dir":
            self.children.setdefault(entry.path, set())

    def _remove(self, path: str, index: int, how: str) -> list[str]:
        entry = self.files.pop(path, None)
        if entry is None:
            return []
        gone = [path]
        entry.gone, entry.how = index, how
        self.children.get(path.rpartition("/")[0], set()).discard(path)
        for child in list(self.children.pop(path, ())):
            gone.extend(self._remove(child, index, how))
        return gone
