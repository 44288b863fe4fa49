"""Credentials in Docker's own format, so that dockyard and docker share them.

``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``):

- ``auths[server]``: ``auth`` = base64("user:password"), or ``identitytoken``;
- ``credHelpers[host]`` names a helper for one registry, ``credsStore`` one
  for all: a program ``docker-credential-NAME`` speaking get/store/erase/list
  with JSON on stdin/stdout. Precedence: credHelpers, credsStore, the file.

Docker Hub's key is ``https://index.docker.io/v1/``; every other registry's
is its ``host[:port]``. The file is rewritten atomically (a temporary file,
fsync, rename) with mode 0600, and unknown keys are kept. Secrets go to
helpers on stdin only and never into a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.registry.auth import Credential
from dockyard.registry.errors import CredentialsError

if TYPE_CHECKING:
    import subprocess

__all__ = ["HUB_SERVER", "DockerConfig", "config_dir", "hostname", "server_key"]

HUB_SERVER = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_NOT_FOUND = "credentials not found in native keychain"
_TOKEN_USER = "<token>"


def config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def hostname(server: str) -> str:
    """``https://host:port/path`` -> ``host:port`` (Docker's ConvertToHostname)."""
    s = server.strip()
    for prefix in ("http://", "https://"):
        s = s.removeprefix(prefix)
    return s.split("/", 1)[0]


def server_key(server: str | None) -> str:
    """The key Docker files credentials under for a server name or a domain."""
    if not server:
        return HUB_SERVER
    host = hostname(server)
    return HUB_SERVER if host in _HUB_NAMES else host


class DockerConfig:
    """Docker's config.json: read on creation, written by ``store``/``erase``."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.path = Path(directory or config_dir()) / "config.json"
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            raw = ""
        except OSError as e:
            raise CredentialsError(f"cannot read {self.path}: {e.strerror}") from None
        try:
            self.data: dict = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            raise CredentialsError(f"{self.path} is not valid JSON: {e}") from None
        if not isinstance(self.data, dict):
            raise CredentialsError(f"{self.path} is not a JSON object")

    # -- lookup -------------------------------------------------------------

    def helper_for(self, server: str) -> str | None:
        key = server_key(server)
        helpers = self.data.get("credHelpers") or {}
        return helpers.get(hostname(key)) or helpers.get(key) or self.data.get("credsStore") or None

    def get(self, server: str | None) -> Credential | None:
        key = server_key(server)
        helper = self.helper_for(key)
        if helper:
            found = helper_get(helper, key)
            if found is not None:
                return found
        return self._from_file(key)

    def _from_file(self, key: str) -> Credential | None:
        auths = self.data.get("auths") or {}
        entry = auths.get(key)
        if entry is None:
            # keys may carry a scheme or a path ("https://host/v1/")
            entry = next((v for k, v in auths.items() if server_key(k) == key), None)
        if not isinstance(entry, dict):
            return None
        username, password = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"], validate=False).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise CredentialsError(f"{self.path}: the auth entry for {key} is not valid base64") from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise CredentialsError(f"{self.path}: the auth entry for {key} has no user:password")
        token = entry.get("identitytoken", "")
        if not (username or token):
            return None
        return Credential(username, password, token)

    # -- changes ------------------------------------------------------------

    def store(self, server: str | None, credential: Credential) -> None:
        key = server_key(server)
        auths = self.data.setdefault("auths", {})
        helper = self.helper_for(key)
        if helper:
            helper_store(helper, key, credential)
            auths[key] = {}  # Docker lists the server, the secret stays in the helper
        else:
            entry: dict[str, str] = {}
            if credential.identity_token:
                entry["identitytoken"] = credential.identity_token
                if credential.username:
                    entry["auth"] = _b64(f"{credential.username}:")
            else:
                entry["auth"] = _b64(f"{credential.username}:{credential.password}")
            auths[key] = entry
        self.save()

    def erase(self, server: str | None) -> bool:
        """Forget the server's credentials; False when there were none."""
        key = server_key(server)
        auths = self.data.get("auths") or {}
        found = [k for k in auths if server_key(k) == key]
        helper = self.helper_for(key)
        if helper:
            found_in_helper = helper_erase(helper, key)
        else:
            found_in_helper = False
        for k in found:
            del auths[k]
        if found:
            self.save()
        return bool(found) or found_in_helper

    def save(self) -> None:
        target = Path(os.path.realpath(self.path))  # a symlinked config stays a symlink
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = (json.dumps(self.data, indent="\t") + "\n").encode()
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".config.json.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


# -- docker-credential-NAME ---------------------------------------------------

def _run_helper(name: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # here: most registries need no helper

    program = f"docker-credential-{name}"
    try:
        return subprocess.run([program, action], input=stdin, capture_output=True, text=True, check=False,
                              timeout=60)
    except FileNotFoundError:
        raise CredentialsError(f"credential helper {program} is not installed (named in config.json)") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} {action} timed out") from None


def _helper_failure(name: str, action: str, proc: subprocess.CompletedProcess[str]) -> CredentialsError:
    # helpers report a short message on stdout or stderr; keep its first line only
    text = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    reason = text[0][:200] if text else f"exit status {proc.returncode}"
    return CredentialsError(f"credential helper docker-credential-{name} {action} failed: {reason}")


def helper_get(name: str, server: str) -> Credential | None:
    proc = _run_helper(name, "get", server)
    if proc.returncode != 0:
        if _NOT_FOUND in proc.stdout + proc.stderr:
            return None
        raise _helper_failure(name, "get", proc)
    try:
        doc = json.loads(proc.stdout)
        username, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    except (ValueError, AttributeError):
        raise CredentialsError(f"credential helper docker-credential-{name} get: unreadable answer") from None
    if not secret and not username:
        return None
    if username == _TOKEN_USER:
        return Credential("", "", secret)
    return Credential(username, secret)


def helper_store(name: str, server: str, credential: Credential) -> None:
    if credential.identity_token:
        doc = {"ServerURL": server, "Username": _TOKEN_USER, "Secret": credential.identity_token}
    else:
        doc = {"ServerURL": server, "Username": credential.username, "Secret": credential.password}
    proc = _run_helper(name, "store", json.dumps(doc))
    if proc.returncode != 0:
        raise _helper_failure(name, "store", proc)


def helper_erase(name: str, server: str) -> bool:
    proc = _run_helper(name, "erase", server)
    if proc.returncode != 0:
        if _NOT_FOUND in proc.stdout + proc.stderr:
            return False
        raise _helper_failure(name, "erase", proc)
    return True


def helper_list(name: str) -> dict[str, str]:
    """Server URL -> user name, as the helper lists them."""
    proc = _run_helper(name, "list", "")
    if proc.returncode != 0:
        raise _helper_failure(name, "list", proc)
    try:
        doc = json.loads(proc.stdout or "{}")
    except ValueError:
        raise CredentialsError(f"credential helper docker-credential-{name} list: unreadable answer") from None
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
