"""`docker import`: a root filesystem tarball becomes a one-layer image.

Also home of the small pieces that `load` shares with it: reading
possibly-compressed streams while hashing them and writing config JSON with
the key order BuildKit and Docker use. ``--change`` instructions go through
the Dockerfile parser and shell expansion, then onto the config.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import lzma
import posixpath
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Iterable
from typing import BinaryIO

from ..dockerfile import commands as c
from ..dockerfile.instructions import parse_instruction_text
from ..dockerfile.shell import Lexer
from ..errors import DockerfileError, LayerError, StoreError
from ..image.platform import Platform
from ..layer.compress import compression_of, open_layer
from ..layer.digest import HashingWriter
from ..reference import Reference
from ..snapshots import unpack_images
from ..store import Image, Store

CHUNK = 1 << 20

# Nested "config" keys in the order BuildKit's image config struct writes them.
_CONFIG_ORDER = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                 "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"]
_HISTORY_ORDER = ["created", "created_by", "author", "comment", "empty_layer"]


# -- config JSON --------------------------------------------------------------

def _ordered(d: dict, order: list[str]) -> dict:
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def config_json(config: dict) -> bytes:
    """Compact config JSON: top-level keys sorted (BuildKit/Docker), nested in struct order."""
    top = {k: config[k] for k in sorted(config)}
    if isinstance(top.get("config"), dict):
        top["config"] = _ordered(top["config"], _CONFIG_ORDER)
    if isinstance(top.get("rootfs"), dict):
        top["rootfs"] = _ordered(top["rootfs"], ["type", "diff_ids"])
    if isinstance(top.get("history"), list):
        top["history"] = [_ordered(h, _HISTORY_ORDER) if isinstance(h, dict) else h
                          for h in top["history"]]
    return json.dumps(top, separators=(",", ":"), ensure_ascii=False).encode()


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- streams ------------------------------------------------------------------

class HashingReader:
    """Reads through to a stream while hashing what passed (the archive's own bytes)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Prefixed:
    """A stream with its sniffed first bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(n)
        if n is None or n < 0:
            data, self._head = self._head + self._rest.read(), b""
        else:
            data, self._head = self._head[:n], self._head[n:]
        return data


class _ZstdReader:
    """`zstd -dc` in a subprocess: used when the zstandard module is not installed."""

    def __init__(self, source: BinaryIO):
        try:
            self._proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise LayerError("data is zstd-compressed, but neither the zstandard module "
                             "nor the zstd program is installed") from None
        self._error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, args=(source,), daemon=True)
        self._feeder.start()

    def _feed(self, source: BinaryIO) -> None:
        try:
            while chunk := source.read(CHUNK):
                self._proc.stdin.write(chunk)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reading thread
            self._error = exc
        finally:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass

    def read(self, n: int = -1) -> bytes:
        data = self._proc.stdout.read(n)
        if not data and n != 0:
            self._feeder.join()
            err = self._proc.stderr.read().decode(errors="replace").strip()
            if self._proc.wait() != 0:
                raise LayerError(f"cannot decompress zstd data: {err or 'zstd failed'}")
            if self._error:
                raise self._error
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._feeder.join()
        for f in (self._proc.stdout, self._proc.stderr):
            f.close()


class _Checked:
    """Turns a decompressor's errors on corrupt input into LayerError."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        try:
            return self._stream.read(n)
        except LayerError:
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise LayerError(f"cannot decompress: {exc}") from None

    def close(self) -> None:
        self._stream.close()


def decompressed(stream: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of a plain, gzip, zstd, bzip2 or xz stream (close it after)."""
    head = b""
    while len(head) < 6 and (more := stream.read(6 - len(head))):
        head += more
    rest = _Prefixed(head, stream)
    if compression_of(head) == "zstd" and importlib.util.find_spec("zstandard") is None:
        return _ZstdReader(rest)
    return _Checked(open_layer(rest))


# -- docker import -------------------------------------------------------------

class _Tee:
    """Passes what tarfile reads on to the layer's blob writer, hashing it."""

    def __init__(self, source: BinaryIO, sink: HashingWriter):
        self._source = source
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self._sink.write(data)
        return data


def import_rootfs(store: Store, stream: BinaryIO, *, tag: str | None = None,
                  changes: Iterable[str] = (), message: str = "",
                  platform: str | Platform | None = None) -> Image:
    """Store a root filesystem tarball (plain or compressed) as a one-layer image."""
    name = getattr(stream, "name", None) or "-"
    canonical = None
    if tag:
        ref = Reference.parse(tag)
        if ref.digest:
            raise StoreError(f"cannot import to a digest reference: {tag}")
        canonical = str(ref)
    plat = (Platform.parse(platform) if isinstance(platform, str) else platform) or Platform.host()
    comment = message or "Imported from -"
    created = now_rfc3339()
    config: dict = {"architecture": plat.architecture, "comment": comment, "config": {},
                    "created": created, "history": [{"created": created, "comment": comment}],
                    "os": plat.os}
    if plat.variant:
        config["variant"] = plat.variant
    # Changes first: a bad --change fails before any bytes are stored.
    config["config"] = apply_changes(config["config"], list(changes))

    with store.lock():
        with store.blobs.writer() as writer:
            sink = HashingWriter(writer)
            source = decompressed(stream)
            try:
                # Walking the members checks it is a tar; every byte becomes the layer.
                with tarfile.open(fileobj=_Tee(source, sink), mode="r|") as tf:
                    for _ in tf:
                        pass
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
            except tarfile.TarError as exc:
                raise LayerError(f"{name}: not a valid tar archive: {exc}") from None
            except LayerError as exc:
                raise LayerError(f"{name}: {exc}") from None
            finally:
                source.close()
            existed = store.blobs.has(sink.digest)
            writer.commit(sink.digest)
        try:
            unpack_images(store, [[sink.digest]])
        except LayerError as exc:
            if not existed and sink.digest not in store.referenced_blobs():
                store.blobs.delete(sink.digest)
            raise LayerError(f"{name}: {exc}") from None
        config["rootfs"] = {"type": "layers", "diff_ids": [sink.digest]}
        return store.put_image(config_json(config), [(sink.digest, sink.size)],
                               tags=[canonical] if canonical else [])


# -- --change -------------------------------------------------------------------

# The instructions `docker import/commit --change` can apply to a config
# (Docker 20.10 itself refuses STOPSIGNAL here; we allow it).
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                       "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
_HEALTH_FIELDS = (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                  ("start_interval", "StartInterval"), ("retries", "Retries"))


def _ports(words: list[str]) -> dict:
    ports: dict = {}
    for w in words:
        num, _, proto = w.partition("/")
        lo, _, hi = num.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise DockerfileError(f"EXPOSE: invalid port {w!r}", filename="--change")
        for p in range(int(lo), int(hi or lo) + 1):
            ports[f"{p}/{(proto or 'tcp').lower()}"] = {}
    return ports


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply Dockerfile instructions (docker import --change) to a container config."""
    cfg = json.loads(json.dumps(config))
    lexer = Lexer()
    cmd_set = False
    for text in changes:
        keyword = (text.split(None, 1) or [""])[0].upper()
        if keyword not in CHANGE_INSTRUCTIONS:
            raise DockerfileError(f"{keyword or '(empty)'} is not a valid change instruction "
                                  f"(allowed: {', '.join(CHANGE_INSTRUCTIONS)})", filename="--change")
        cmd = parse_instruction_text(text, filename="--change")
        env = cfg.get("Env") or []  # ENV, WORKDIR, ... see variables set so far
        if hasattr(cmd, "expand"):
            cmd = cmd.expand(lambda word, env=env: lexer.process_word(word, env))
        shell = cfg.get("Shell") or ["/bin/sh", "-c"]
        if isinstance(cmd, c.CmdCommand):
            cfg["Cmd"], cmd_set = (shell + cmd.cmd if cmd.prepend_shell else cmd.cmd), True
        elif isinstance(cmd, c.EntrypointCommand):
            cfg["Entrypoint"] = shell + cmd.cmd if cmd.prepend_shell else cmd.cmd
            if not cmd_set:  # as in a Dockerfile: a new ENTRYPOINT drops an inherited CMD
                cfg.pop("Cmd", None)
        elif isinstance(cmd, c.EnvCommand):
            for key, value in cmd.pairs:
                cfg["Env"] = [e for e in cfg.get("Env") or [] if e.split("=", 1)[0] != key]
                cfg["Env"].append(f"{key}={value}")
        elif isinstance(cmd, c.LabelCommand):
            cfg.setdefault("Labels", {}).update(cmd.pairs)
        elif isinstance(cmd, c.ExposeCommand):
            words = cmd.expand_words(lambda word, env=env: lexer.process_words(word, env)).ports
            cfg.setdefault("ExposedPorts", {}).update(_ports(words))
        elif isinstance(cmd, c.VolumeCommand):
            cfg.setdefault("Volumes", {}).update((v, {}) for v in cmd.volumes)
        elif isinstance(cmd, c.UserCommand):
            cfg["User"] = cmd.user
        elif isinstance(cmd, c.StopsignalCommand):
            cfg["StopSignal"] = cmd.signal
        elif isinstance(cmd, c.WorkdirCommand):
            cfg["WorkingDir"] = posixpath.normpath(
                posixpath.join(cfg.get("WorkingDir") or "/", cmd.path))
        elif isinstance(cmd, c.OnbuildCommand):
            cfg.setdefault("OnBuild", []).append(cmd.expression)
        elif isinstance(cmd, c.HealthcheckCommand):
            check: dict = {"Test": cmd.test}
            check.update((key, getattr(cmd, attr)) for attr, key in _HEALTH_FIELDS
                         if getattr(cmd, attr))
            cfg["Healthcheck"] = check
    return cfg
