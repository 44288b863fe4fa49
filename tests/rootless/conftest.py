"""A throwaway unprivileged user to run the `dockyard` command as.

The user gets a home under /tmp, a block of subordinate ids (its own lines in
/etc/subuid and /etc/subgid, taken out again afterwards) and runs dockyard
through `setpriv` with the system's python3, on a world-readable copy of this
checkout's package and its dependencies: the checkout and the test runner's
own interpreter may live where the user cannot reach (a clone under /root).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import dockyard

SYSTEM_PYTHON = "/usr/bin/python3"
SUBID_COUNT = 65536


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path
    subids: tuple[int, int] | None   # (start, count) of its subuid = subgid range

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "PYTHONPATH": str(_readable_packages()), "LANG": "C.UTF-8"}

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            **kwargs) -> subprocess.CompletedProcess[str]:
        """`dockyard ARGS` as this user; check=True fails the test on a non-zero exit."""
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
               "env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
               SYSTEM_PYTHON, "-m", "dockyard.cli.main", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.home,
                              stdin=subprocess.DEVNULL, **kwargs)
        if check and proc.returncode != 0:
            pytest.fail(f"dockyard {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    @property
    def store(self) -> Path:
        return self.home / ".local" / "share" / "dockyard"

    def runtime_dir(self) -> Path:
        return Path(f"/tmp/dockyard-{self.uid}")


_PACKAGES: list[Path] = []


def _readable_packages() -> Path:
    """dockyard and what it imports, copied once per run where any user can read them."""
    if not _PACKAGES:
        import isal
        import zstandard

        top = Path(tempfile.mkdtemp(prefix="dockyard-rootless-py-", dir="/tmp"))
        for mod in (dockyard, click, zstandard, isal):
            src = Path(mod.__file__).parent
            shutil.copytree(src, top / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chmod(os.path.join(dirpath, name), 0o755 if name in dirnames else 0o644)
        top.chmod(0o755)
        _PACKAGES.append(top)
    return _PACKAGES[0]


def _lines(path: str, name: str) -> list[str]:
    return [x for x in Path(path).read_text().splitlines() if x.split(":")[0] == name]


def _drop_lines(path: str, name: str) -> None:
    text = Path(path).read_text().splitlines()
    Path(path).write_text("".join(x + "\n" for x in text if x.split(":")[0] != name))


def _free_start(count: int) -> int:
    used = []
    for path in ("/etc/subuid", "/etc/subgid"):
        for line in Path(path).read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                used.append(int(parts[1]) + int(parts[2]))
    return max([1_700_000_000, *used])


@contextlib.contextmanager
def _subid_lock():
    # Test runs in other checkouts add and drop lines of their own meanwhile.
    with open("/tmp/dockyard-tests-subid.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _make_user(name: str, subids: bool) -> User:
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-U", name], check=True,
                   capture_output=True)
    pw = pwd.getpwnam(name)
    _stop_pause(Path(f"/tmp/dockyard-{pw.pw_uid}"))   # left by an earlier user with this uid
    _kill_leftovers(pw.pw_uid)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o755)
    rng = None
    with _subid_lock():
        for path in ("/etc/subuid", "/etc/subgid"):
            Path(path).touch()
            _drop_lines(path, name)   # useradd may have added a range of its own
        if subids:
            start = _free_start(SUBID_COUNT)
            for path in ("/etc/subuid", "/etc/subgid"):
                with open(path, "a") as fh:
                    fh.write(f"{name}:{start}:{SUBID_COUNT}\n")
            rng = (start, SUBID_COUNT)
    return User(name, pw.pw_uid, pw.pw_gid, home, rng)


def _stop_pause(rundir: Path) -> None:
    try:
        pid = int((rundir / "pause.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"dockyard-rootless-pause" in fh.read():
                os.kill(pid, signal.SIGKILL)   # the namespace keeper dockyard started for the user
    except (OSError, ValueError):
        pass
    shutil.rmtree(rundir, ignore_errors=True)


def _kill_leftovers(uid: int) -> None:
    """Namespace keepers of an earlier user that had this uid (a run killed before clean-up)."""
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and p.stat().st_uid == uid and \
                    b"dockyard-rootless-pause" in (p / "cmdline").read_bytes():
                os.kill(int(p.name), signal.SIGKILL)
        except OSError:
            pass   # ended meanwhile


def _remove_user(user: User) -> None:
    _stop_pause(user.runtime_dir())
    with _subid_lock():
        for path in ("/etc/subuid", "/etc/subgid"):
            _drop_lines(path, user.name)
    subprocess.run(["userdel", "-f", user.name], capture_output=True)
    shutil.rmtree(user.home, ignore_errors=True)


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a test user"
    for tool in ("useradd", "userdel", "setpriv", "newuidmap", "newgidmap", "runc"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not os.path.exists(SYSTEM_PYTHON):
        return f"needs {SYSTEM_PYTHON}"
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True)
    if out.stdout.strip() != str(tuple(sys.version_info[:2])):
        return f"{SYSTEM_PYTHON} is not Python {sys.version_info[0]}.{sys.version_info[1]}"
    return None


@pytest.fixture(scope="module")
def make_user():
    reason = _usable()
    if reason:
        pytest.skip(reason)
    made: list[User] = []

    def make(name: str, subids: bool = True) -> User:
        # One name per test run: runs in other checkouts may use the same fixture at once.
        user = _make_user(f"{name}-{os.getpid()}", subids)
        made.append(user)
        probe = user.run("--version", check=False)
        if probe.returncode != 0:
            pytest.skip(f"the test user cannot run this checkout: {probe.stderr.strip()[-300:]}")
        return user

    yield make
    for user in made:
        _remove_user(user)
    while _PACKAGES:
        shutil.rmtree(_PACKAGES.pop(), ignore_errors=True)


@pytest.fixture(scope="module")
def user(make_user):
    return make_user("dockyard-rl")
