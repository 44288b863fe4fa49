"""The error tree shared by every dockyard package.

DockyardError
 ├── DockerfileError      parse, expansion and instruction errors (file:line)
 ├── ReferenceError_      bad image names
 ├── StoreError           blob store, metadata, missing images
 ├── LayerError           unsafe or unreadable layer tarballs
 ├── ContainerRuntimeError  runc / mounts
 ├── BuildError           a step failed
 └── RegistryError        distribution protocol
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of every error dockyard reports to a user as one line."""


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
            "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote): double quotes, printable characters kept, the
    rest escaped, so a message quoting hostile text stays on one line."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80
                       else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class DockerfileError(DockyardError):
    def __init__(self, message: str, filename: str | None = None, line: int | None = None):
        self.message = message
        self.filename = filename
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.filename and self.line:
            where = f"{self.filename}:{self.line}: "
        elif self.filename:
            where = f"{self.filename}: "
        elif self.line:
            where = f"line {self.line}: "
        return where + self.message


class InvalidReference(DockyardError):
    pass


class StoreError(DockyardError):
    pass


class ImageNotFound(StoreError):
    pass


class LayerError(DockyardError):
    pass


class ContainerRuntimeError(DockyardError):
    pass


class BuildError(DockyardError):
    pass


class RegistryError(DockyardError):
    pass
