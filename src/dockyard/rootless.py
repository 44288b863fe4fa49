"""Rootless mode: dockyard as an unprivileged user, inside a user namespace.

`ensure()` moves the calling process (not a child: no re-exec) into a user
and mount namespace where it is uid 0. The user's own uid is mapped to 0 and
its subordinate ids (/etc/subuid, /etc/subgid, written by the setuid
newuidmap/newgidmap from the `uidmap` package) to 1..N, so image files owned
by any uid below N+1 can be created. Without subordinate ids only the single
mapping 0 -> user is possible: files owned by other uids then cannot be made.

The first command starts a tiny "pause" process that keeps the namespaces
alive; later commands join them with setns(2). That way the overlay mounts,
runc state and detached containers of one command are visible to the next
(`run -d` then `exec`, `stop`, `rm`), as Podman does with its pause process.

Inside, the process has every capability of its namespace, never of the
host: the kernel checks each access against the real (mapped) ids.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import DockyardError

__all__ = ["Mapping", "RootlessError", "active", "ensure", "id_mapped", "in_user_namespace", "mapping",
           "runtime_dir", "subordinate_ids"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_REC, _MS_SLAVE = 0x4000, 1 << 19
_ENV = "_DOCKYARD_ROOTLESS"   # set inside: the host uid that entered (children see it too)
_PAUSE_MARK = "dockyard-rootless-pause"
_IDENTITY = ["0", "0", "4294967295"]


class RootlessError(DockyardError):
    pass


@dataclass(frozen=True)
class Mapping:
    """How ids inside map to the user's: 0 -> uid, 1.. -> the subordinate ranges."""

    uid: int
    gid: int
    subuids: tuple[tuple[int, int], ...]
    subgids: tuple[tuple[int, int], ...]

    @property
    def full(self) -> bool:
        return bool(self.subuids and self.subgids)

    def lines(self, own: int, ranges: tuple[tuple[int, int], ...]) -> list[int]:
        """newuidmap's arguments: inside, outside, count triples."""
        out = [0, own, 1]
        inside = 1
        for start, count in ranges:
            out += [inside, start, count]
            inside += count
        return out


def in_user_namespace() -> bool:
    """True when this process is not in the initial user namespace."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            lines = fh.read().split("\n")
    except OSError:
        return False
    return [line.split() for line in lines if line.strip()] != [_IDENTITY]


def id_mapped(kind: str, inside: int) -> bool:
    """True when uid/gid `inside` exists in this process's user namespace."""
    try:
        with open(f"/proc/self/{kind}_map", encoding="ascii") as fh:
            rows = [list(map(int, line.split())) for line in fh if line.strip()]
    except OSError:
        return True
    return any(first <= inside < first + count for first, _, count in rows)


def active() -> bool:
    """True inside the namespace that `ensure()` set up (here or in a parent dockyard)."""
    return bool(os.environ.get(_ENV)) and in_user_namespace()


def subordinate_ids(path: str, user: str, uid: int) -> tuple[tuple[int, int], ...]:
    """(start, count) ranges of `user` (by name or uid) in a subuid/subgid file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return ()
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) > 0:
            out.append((int(parts[1]), int(parts[2])))
    return tuple(out)


def mapping(uid: int | None = None, gid: int | None = None) -> Mapping:
    import pwd

    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    subuids = subordinate_ids("/etc/subuid", user, uid)
    subgids = subordinate_ids("/etc/subgid", user, uid)
    return Mapping(uid, gid, subuids, subgids)


def runtime_dir(uid: int | None = None) -> Path:
    """A directory only this user can write: $XDG_RUNTIME_DIR/dockyard, else
    /tmp/dockyard-UID (checked: made by us, ours, mode 0700)."""
    if uid is None:
        uid = int(os.environ[_ENV]) if active() else os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        path = Path(xdg) / "dockyard"
        path.mkdir(mode=0o700, exist_ok=True)
        return path
    path = Path(f"/tmp/dockyard-{uid}")
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise RootlessError(f"{path} is not a private directory of uid {uid}: remove it, "
                            "or set XDG_RUNTIME_DIR")
    return path


def ensure() -> None:
    """Run the rest of this process rootless when it is not root.

    No-op as root and inside the namespace already. Call it before any
    thread starts: the kernel moves only single-threaded processes.
    """
    if os.geteuid() == 0:
        return
    if len(os.listdir("/proc/self/task")) > 1:
        raise RootlessError("rootless.ensure() must run before any thread starts: the kernel "
                            "moves only a single-threaded process into a user namespace")
    outer = os.getuid()
    rundir = runtime_dir()
    lock = os.open(rundir / "ns.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)   # two first commands must not make two namespaces
        pidfile = rundir / "pause.pid"
        if not _join(pidfile):
            _create(pidfile)
    finally:
        os.close(lock)
    os.environ[_ENV] = str(outer)


def _libc():
    from .runtime._libc import libc

    libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
    return libc


def _join(pidfile: Path) -> bool:
    """Enter the pause process's namespaces; False when there is none alive."""
    try:
        pid = int(pidfile.read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if _PAUSE_MARK.encode() not in fh.read().split(b"\0"):
                return False
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
        if not _same_maps(pid, mapping()):
            os.kill(pid, 9)     # /etc/subuid changed: that namespace is stale
            return False
        fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in ("user", "mnt")]
    except (OSError, ValueError):
        return False
    libc = _libc()
    cwd = os.getcwd()       # entering a mount namespace moves us to its root
    try:
        for fd, kind in zip(fds, (_CLONE_NEWUSER, _CLONE_NEWNS)):
            if libc.setns(fd, kind) != 0:
                err = ctypes.get_errno()
                raise RootlessError(f"joining the rootless namespaces of process {pid}: {os.strerror(err)}")
    finally:
        for fd in fds:
            os.close(fd)
    os.chdir(cwd)
    return True


def _same_maps(pid: int, m: Mapping) -> bool:
    def table(name: str) -> list[list[int]]:
        with open(f"/proc/{pid}/{name}", encoding="ascii") as fh:
            return [list(map(int, line.split())) for line in fh if line.strip()]

    def wanted(own: int, ranges: tuple[tuple[int, int], ...]) -> list[list[int]]:
        flat = m.lines(own, ranges if m.full else ())
        return [flat[i:i + 3] for i in range(0, len(flat), 3)]

    return (table("uid_map") == wanted(m.uid, m.subuids)
            and table("gid_map") == wanted(m.gid, m.subgids))


def _create(pidfile: Path) -> None:
    import shutil
    import subprocess

    m = mapping()
    libc = _libc()
    helper = None
    if m.full:
        tools = [shutil.which(t) for t in ("newuidmap", "newgidmap")]
        if None in tools:
            raise RootlessError("rootless mode needs newuidmap and newgidmap (apt-get install uidmap)")
        # They must run outside the new namespace, so they start first and
        # wait for a line on stdin: by then this process has unshared.
        script = ('read _ || exit 1; "$1" "$3" $4 || exit 1; "$2" "$3" $5')
        helper = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", tools[0], tools[1], str(os.getpid()),
             " ".join(map(str, m.lines(m.uid, m.subuids))),
             " ".join(map(str, m.lines(m.gid, m.subgids)))],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True)
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        if helper is not None:
            helper.kill()
            helper.wait()
        raise RootlessError(f"cannot create a user namespace: {os.strerror(err)} "
                            "(the kernel may forbid unprivileged user namespaces)")
    if helper is not None:
        _, err_text = helper.communicate(b"go\n")
        if helper.returncode != 0:
            raise RootlessError("newuidmap/newgidmap failed: "
                                + (err_text.decode(errors="replace").strip() or f"exit {helper.returncode}"))
    else:
        _write_single(m)
        print(f"dockyard: warning: no subordinate ids for uid {m.uid} in /etc/subuid and /etc/subgid: "
              "only uid/gid 0 exist in containers, and files owned by any other id cannot be "
              "created (add a range with usermod --add-subuids/--add-subgids)", file=sys.stderr)
    with contextlib.suppress(OSError):
        os.setgroups([0])   # the host's supplementary groups are unmapped here
    # Mounts made here must not reach the host's mount table, nor the host's
    # unmounts pull ours away: slave, as the kernel does for a less privileged namespace.
    libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None)
    pause = subprocess.Popen(
        [sys.executable, "-S", "-c", "import signal\nwhile True: signal.pause()", _PAUSE_MARK],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, start_new_session=True, cwd="/")
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(f"{pause.pid}\n")
    tmp.replace(pidfile)


def _write_single(m: Mapping) -> None:
    # Without newuidmap a process may map only its own ids, after denying setgroups.
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"0 {m.uid} 1\n")
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny\n")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"0 {m.gid} 1\n")
