"""COPY/ADD sources that are not in the build context: heredocs, URLs, git.

Each is written into a scratch directory and handed to the copier like any
other source tree, so ownership, --chown/--chmod and destination rules are the
same for all of them. What BuildKit does, and so do we:

- a heredoc becomes a file named after its delimiter, mode 0644;
- a URL is downloaded to a file named after the last element of its path
  (``__unnamed__`` when there is none), mode 0600, its mtime taken from the
  Last-Modified header; ``--checksum=sha256:...`` is verified;
- a git reference ``URL#ref:subdir`` is cloned at the commit the ref names and
  the subdirectory's contents are copied; ``.git`` only with --keep-git-dir.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import BuildError
from .context import Match, SourceTree

_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_USER_AGENT = "dockyard"
_TIMEOUT = 60


def source_kind(src: str, command: str) -> str:
    """'git', 'url' or 'path'; COPY refuses the first two, as BuildKit does."""
    if parse_git_ref(src) is not None:
        kind = "git"
    elif src.startswith(("http://", "https://")):
        kind = "url"
    else:
        return "path"
    if command != "ADD":
        raise BuildError(f"source can't be a {'git ref' if kind == 'git' else 'URL'} for {command}")
    return kind


# -- heredocs ------------------------------------------------------------------

def heredoc_key(path: str, data: str) -> dict:
    return {"heredoc": path, "sha256": hashlib.sha256(data.encode()).hexdigest()}


@dataclass
class Fetched:
    """A source made ready for the copier: its tree and the one entry to copy."""

    tree: SourceTree
    match: Match
    sha256: str = ""             # URLs: hex digest of the content
    mtime: float | None = None   # URLs: from Last-Modified


def write_heredoc(work: Path, path: str, data: str) -> Fetched:
    """The heredoc as a 0644 file in its own directory under `work`."""
    name = PurePosixPath(path).name
    if name in ("", ".", ".."):
        raise BuildError(f"invalid heredoc name {path!r}")
    top = _fresh_dir(work, "heredoc")
    target = top / name
    target.write_bytes(data.encode())
    os.chmod(target, 0o644)
    return Fetched(SourceTree(top, is_context=False), Match(name, target))


# -- URLs ----------------------------------------------------------------------

def url_filename(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    name = PurePosixPath(path).name if path else ""
    return name if name not in ("", ".", "..") else "__unnamed__"


def parse_checksum(value: str) -> tuple[str, str]:
    """('sha256', hex) from 'sha256:hex'; raises on anything else."""
    algo, sep, hexpart = value.partition(":")
    size = _ALGORITHMS.get(algo)
    if not sep or size is None:
        raise BuildError(f"invalid checksum {value!r}: want sha256:, sha384: or sha512: and a hex digest")
    if len(hexpart) != size or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise BuildError(f"invalid checksum {value!r}: {algo} needs {size} lowercase hex digits")
    return algo, hexpart


def download(url: str, work: Path, checksum: str | None = None) -> Fetched:
    """Fetch `url` into a fresh directory under `work`, verifying `checksum`."""
    import urllib.error  # the HTTP client only when a URL is fetched: builds start faster
    import urllib.request

    want = parse_checksum(checksum) if checksum else None
    name = url_filename(url)
    top = _fresh_dir(work, "url")
    target = top / name
    sha256 = hashlib.sha256()
    check = hashlib.new(want[0]) if want else None
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as resp, open(target, "wb") as out:
            modified = resp.headers.get("Last-Modified")
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                sha256.update(chunk)
                if check is not None:
                    check.update(chunk)
    except urllib.error.HTTPError as e:
        raise BuildError(f"failed to download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise BuildError(f"failed to download {url}: {reason}") from None
    if want is not None and check.hexdigest() != want[1]:
        raise BuildError(f"checksum mismatch for {url}: expected {want[0]}:{want[1]}, "
                         f"got {want[0]}:{check.hexdigest()}")
    os.chmod(target, 0o600)
    mtime = _http_time(modified)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return Fetched(SourceTree(top, is_context=False), Match(name, target), sha256.hexdigest(), mtime)


def _http_time(value: str | None) -> float | None:
    import email.utils

    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


# -- git -----------------------------------------------------------------------

@dataclass(frozen=True)
class GitRef:
    remote: str
    ref: str = ""        # branch, tag, full ref name or commit; '' = the remote's HEAD
    subdir: str = ""


def parse_git_ref(src: str) -> GitRef | None:
    """A git source of ADD, or None for anything else.

    git://, ssh:// and git@host:path are always git; http(s) only when the
    path ends in .git; file:// names a local repository (dockyard's addition,
    used for testing). A `#ref:subdir` fragment picks the ref and directory."""
    if src.startswith(("./", "../", "/")):
        return None
    remote, _, fragment = src.partition("#")
    scheme = remote.split("://", 1)[0].lower() if "://" in remote else ""
    if scheme in ("http", "https"):
        if not urllib.parse.urlsplit(remote).path.endswith(".git"):
            return None
    elif scheme not in ("git", "ssh", "file") and not re.match(r"^[\w.-]+@[\w.-]+:", remote):
        return None
    ref, _, subdir = fragment.partition(":")
    return GitRef(remote, ref, subdir.strip("/"))


def _git(args: list[str], cwd: Path | None = None, what: str = "") -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "LC_ALL": "C",
           "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")}
    for name in ("SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    cmd = ["git", "-c", "safe.directory=*", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main",
           *args]
    try:
        done = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise BuildError("git is needed for a git source but was not found") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what or 'git'}: timed out") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise BuildError(f"{what or 'git ' + args[0]}: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout


_HEX = re.compile(r"^[0-9a-f]{7,64}$")


def resolve_commit(ref: GitRef) -> str:
    """The commit id `ref` names on its remote, asking the remote (ls-remote)."""
    what = f"failed to resolve {ref.remote}#{ref.ref or 'HEAD'}"
    name = ref.ref or "HEAD"
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name):
        return name
    out = _git(["ls-remote", ref.remote], what=what)
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, refname = line.partition("\t")
        refs[refname.strip()] = sha.strip()
    for candidate in (name, f"refs/heads/{name}", f"refs/tags/{name}"):
        if candidate + "^{}" in refs:       # an annotated tag: the commit it points to
            return refs[candidate + "^{}"]
        if candidate in refs:
            return refs[candidate]
    if _HEX.match(name):
        return name                         # an abbreviated commit: checked after the fetch
    raise BuildError(f"{what}: no such branch, tag or ref")


def checkout(ref: GitRef, commit: str, work: Path, keep_git_dir: bool) -> Fetched:
    """Clone `commit` of `ref.remote` under `work`; the subdirectory is what is copied."""
    top = _fresh_dir(work, "git")
    what = f"failed to fetch {ref.remote}"
    _git(["init", "-q", str(top)], what=what)
    _git(["remote", "add", "origin", ref.remote], cwd=top, what=what)
    wanted = [commit] if len(commit) in (40, 64) else []
    fetched = False
    for extra in (["--depth=1"], []):
        if not wanted:
            break
        try:
            _git(["fetch", "-q", "--no-tags", *extra, "origin", *wanted], cwd=top, what=what)
            fetched = True
            break
        except BuildError:
            continue
    if not fetched:   # servers that refuse fetching by id, dumb http: take every branch and tag
        _git(["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"], cwd=top, what=what)
    try:
        full = _git(["rev-parse", "--verify", "-q", f"{commit}^{{commit}}"], cwd=top, what=what).strip()
    except BuildError:
        raise BuildError(f"{what}: commit {commit} not found") from None
    _git(["-c", "advice.detachedHead=false", "checkout", "-q", full], cwd=top, what=what)
    if (top / ".gitmodules").exists():
        _git(["submodule", "update", "-q", "--init", "--recursive"], cwd=top, what=what)
    _normalize_modes(top)
    if not keep_git_dir:
        _remove(top / ".git")
    source = top / ref.subdir if ref.subdir else top
    if ref.subdir and (".." in ref.subdir.split("/") or not source.is_dir()):
        raise BuildError(f"{what}: no directory {ref.subdir!r} at {full[:12]}")
    return Fetched(SourceTree(source, is_context=False), Match("", source))


def _normalize_modes(top: Path) -> None:
    # git writes 0644/0755 through the umask; make the result umask-independent
    for dirpath, dirnames, filenames in os.walk(top):
        if ".git" in dirnames and Path(dirpath) == top:
            dirnames.remove(".git")
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if st.st_mode & 0o100 else 0o644)
    os.chmod(top, 0o755)


# -- helpers -------------------------------------------------------------------

def _fresh_dir(work: Path, kind: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = work / f"{kind}-{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def _remove(path: Path) -> None:
    from ..store.store import remove_tree

    remove_tree(path)
