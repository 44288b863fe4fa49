"""User and group resolution against an image's own /etc/passwd and /etc/group.

Never the host's `pwd`/`grp` modules or NSS (docker cp CVE-2019-14271): the
files are parsed here, and read through `scoped_resolve` so a symlinked
/etc/passwd cannot reach outside the rootfs.

Two rule sets exist and both are kept:

* `resolve_user` is the USER / `docker run -u` rule (runc's GetExecUser, as
  Docker and BuildKit use it): "name", "uid", "name:group", "uid:gid",
  "uid:groupname"...; additional gids are the groups that list the user, and
  only when no group was given explicitly.
* `resolve_chown` is BuildKit's COPY/ADD --chown rule, which differs: a bare
  uid means gid = uid, and an unknown name falls back to 0 silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime._paths import read_file_in_root

__all__ = ["GroupEntry", "PasswdEntry", "lookup_home", "parse_group", "parse_passwd",
           "resolve_chown", "resolve_user"]

MAX_ID = 2**31 - 1
PASSWD_PATH = "/etc/passwd"
GROUP_PATH = "/etc/group"


class _Entry:
    # Plain value classes, not dataclasses: building one costs ~3M instructions at every start.
    __slots__: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class PasswdEntry(_Entry):
    __slots__ = ("name", "uid", "gid", "home")

    def __init__(self, name: str, uid: int, gid: int, home: str):
        self.name, self.uid, self.gid, self.home = name, uid, gid, home


class GroupEntry(_Entry):
    __slots__ = ("name", "gid", "members")

    def __init__(self, name: str, gid: int, members: tuple[str, ...]):
        self.name, self.gid, self.members = name, gid, members


def _int_field(text: str) -> int:
    # runc ignores unparsable numeric fields (they read as 0); so do we.
    try:
        return int(text)
    except ValueError:
        return 0


def _lines(data: bytes) -> list[list[str]]:
    rows = []
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        line = raw.strip()
        if not line:
            continue
        rows.append(line.split(":"))
    return rows


def parse_passwd(data: bytes) -> list[PasswdEntry]:
    """name:password:uid:gid:gecos:home:shell, one per line."""
    out = []
    for f in _lines(data):
        f += [""] * (7 - len(f))
        out.append(PasswdEntry(f[0], _int_field(f[2]), _int_field(f[3]), f[5]))
    return out


def parse_group(data: bytes) -> list[GroupEntry]:
    """name:password:gid:member,member."""
    out = []
    for f in _lines(data):
        f += [""] * (4 - len(f))
        members = tuple(m for m in f[3].split(",") if m)
        out.append(GroupEntry(f[0], _int_field(f[2]), members))
    return out


def _read_passwd(rootfs: Path) -> list[PasswdEntry] | None:
    data = read_file_in_root(rootfs, PASSWD_PATH)
    return None if data is None else parse_passwd(data)


def _read_group(rootfs: Path) -> list[GroupEntry] | None:
    data = read_file_in_root(rootfs, GROUP_PATH)
    return None if data is None else parse_group(data)


def _numeric(text: str) -> int | None:
    # Docker accepts only plain decimal digits as an id ("+5" or " 5" are names).
    if text and text.isascii() and text.isdigit():
        return int(text)
    return None


def _check_range(value: int) -> int:
    if value > MAX_ID:
        raise ContainerRuntimeError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, list[int]]:
    """(uid, gid, additional gids) for a USER value, by Docker's rules.

    An empty `user` means root (uid 0 with its passwd gid and groups).
    """
    user_arg, _, group_arg = user.partition(":")
    group_arg = group_arg.split(":")[0]  # runc ignores fields past the second
    uid_num = _numeric(user_arg)
    gid_num = _numeric(group_arg)
    passwd = _read_passwd(rootfs)

    uid, gid = 0, 0
    matched: PasswdEntry | None = None
    for entry in passwd or ():
        if (user_arg == "" and entry.uid == 0) or \
           (uid_num is not None and entry.uid == uid_num) or \
           (uid_num is None and user_arg != "" and entry.name == user_arg):
            matched = entry
            break
    if matched is not None:
        uid, gid = matched.uid, matched.gid
    elif user_arg:
        if uid_num is None:
            raise ContainerRuntimeError(
                f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = _check_range(uid_num)

    extra: list[int] = []
    if group_arg or matched is not None:
        groups = _read_group(rootfs) or []
        if group_arg:
            found = next((g for g in groups
                          if (g.gid == gid_num if gid_num is not None else g.name == group_arg)), None)
            if found is not None:
                gid = found.gid
            elif gid_num is None:
                raise ContainerRuntimeError(
                    f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = _check_range(gid_num)
        else:
            # Supplementary groups only in the implicit form, as runc does.
            assert matched is not None
            extra = [g.gid for g in groups if matched.name in g.members]
    return uid, gid, extra


def lookup_home(rootfs: Path, uid: int) -> str:
    """HOME for `uid` from the image's passwd; "/" when there is no entry."""
    for entry in _read_passwd(rootfs) or ():
        if entry.uid == uid:
            return entry.home or "/"
    return "/"


def resolve_chown(rootfs: Path, spec: str, *, strict: bool = False) -> tuple[int, int]:
    """(uid, gid) for COPY/ADD --chown=SPEC, by BuildKit's rules.

    "1000" -> (1000, 1000); "name" -> (name's uid, name's primary gid);
    "user:group" looks each part up separately, a numeric part is taken as is.
    BuildKit quietly uses 0 for a name it cannot find (and keeps the user's gid
    for an unknown group); `strict=True` raises instead, like the classic builder.
    """
    if not spec:
        raise ContainerRuntimeError("--chown needs a user")
    user_arg, sep, group_arg = spec.partition(":")
    uid = gid = 0
    uid_num = _numeric(user_arg)
    if uid_num is not None:
        uid = gid = _check_range(uid_num)
    else:
        entry = next((e for e in _read_passwd(rootfs) or () if e.name == user_arg), None)
        if entry is not None:
            uid, gid = entry.uid, entry.gid
        elif strict:
            raise ContainerRuntimeError(
                f"unable to find user {user_arg}: no matching entries in passwd file")
    if sep and group_arg:
        gid_num = _numeric(group_arg)
        if gid_num is not None:
            gid = _check_range(gid_num)
        else:
            group = next((g for g in _read_group(rootfs) or () if g.name == group_arg), None)
            if group is not None:
                gid = group.gid
            elif strict:
                raise ContainerRuntimeError(
                    f"unable to find group {group_arg}: no matching entries in group file")
    return uid, gid
