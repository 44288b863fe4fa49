"""The three tools under test, each behind the same small set of verbs.

After shared/bench/compare.py's Docker/Buildah/Dockyard classes, changed so that
the benchmark never touches anything it did not make: Docker's cold state removes
only bench images (plus `docker builder prune -af`), Buildah and dockyard keep
their stores in the run's scratch directory.

Every verb returns an argv (or a shell string) for the harness to time; set-up
steps that are not measured run inside the verb.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from fixtures import BUSYBOX_REF, CACHE, DEBIAN_REF, DOCKER, sh

BENCH_PREFIX = "dockyard-bench-"  # every local image the bench makes is named so (plus the pushed refs)


class Tool:
    name = "?"
    measures_memory = False  # the work happens in the process we start (not in a daemon)

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def reset(self, debian: bool = True) -> None:
        """Back to an empty store holding only the base images (busybox, and Debian if asked)."""

    def build(self, tag: str) -> list[str] | str:
        raise NotImplementedError

    def run_true(self, tag: str) -> list[str] | str | None:
        return None

    def push(self, tag: str, dest: str) -> list[str] | str | None:
        return None

    def pull(self, dest: str) -> list[str] | str | None:
        return None

    def retag(self, src: str, dest: str) -> None:
        pass

    def cleanup(self) -> None:
        pass


class Docker(Tool):
    name = "docker"

    def env(self):
        return dict(os.environ, DOCKER_BUILDKIT="1")

    def _images(self) -> list[str]:
        out = sh([DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}"], check=False).stdout.split()
        return [i for i in out if BENCH_PREFIX in i or "/dockyard-bench/" in i]

    def reset(self, debian=True):
        # Only what the bench made: other people's images and containers on this daemon stay.
        imgs = self._images()
        if imgs:
            sh([DOCKER, "rmi", "-f", *imgs], check=False)
        sh([DOCKER, "builder", "prune", "-af"], check=False, env=self.env())
        for ref in (BUSYBOX_REF, DEBIAN_REF):
            if sh([DOCKER, "image", "inspect", ref], check=False).returncode != 0:
                sh([DOCKER, "pull", ref])

    def build(self, tag):
        return [DOCKER, "build", "-q", "-t", tag, "."]

    def run_true(self, tag):
        return [DOCKER, "run", "--rm", tag, "true"]

    def retag(self, src, dest):
        sh([DOCKER, "tag", src, dest])

    def push(self, tag, dest):
        self.retag(tag, dest)
        return [DOCKER, "push", "-q", dest]

    def pull(self, dest):
        return [DOCKER, "pull", "-q", dest]

    def cleanup(self):
        self.reset()


class Buildah(Tool):
    name = "buildah"
    measures_memory = True

    def __init__(self, scratch: Path):
        self.root = scratch / "buildah"
        self.base = ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                     "--storage-driver", "overlay"]

    def _b(self, *args: str) -> list[str]:
        return [*self.base, *args]

    def reset(self, debian=True):
        sh(self._b("rm", "-a"), check=False)
        sh(self._b("rmi", "-af"), check=False)
        for ref in (BUSYBOX_REF, DEBIAN_REF) if debian else (BUSYBOX_REF,):
            sh(self._b("pull", "-q", "--tls-verify=false", f"docker://{ref}"))

    def build(self, tag):
        # --pull=false: use the local base like Docker and dockyard do (buildah's default
        # asks the registry for a newer one on every build); --layers: keep a build cache.
        return self._b("bud", "-q", "--layers", "--pull=false", "--tls-verify=false", "--runtime", "runc",
                       "--format", "docker", "-t", tag, ".")

    def run_true(self, tag):
        # podman run fails on these machines (no CAP_SYS_RESOURCE: rlimits); from+run+rm is
        # buildah's `run --rm`.
        b = shlex.join(self.base)
        return (f"c=$({b} from -q --pull=never {shlex.quote(tag)}) && {b} run --runtime runc \"$c\" true "
                f"&& {b} rm \"$c\" >/dev/null")

    def push(self, tag, dest):
        return self._b("push", "-q", "--tls-verify=false", f"localhost/{tag}", f"docker://{dest}")

    def pull(self, dest):
        return self._b("pull", "-q", "--tls-verify=false", f"docker://{dest}")

    def retag(self, src, dest):
        sh(self._b("tag", src, dest))

    def cleanup(self):
        sh(self._b("rm", "-a"), check=False)
        sh(self._b("rmi", "-af"), check=False)
        subprocess.run(["umount", "-R", str(self.root / "storage" / "overlay")], stderr=subprocess.DEVNULL,
                       check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class Dockyard(Tool):
    name = "dockyard"
    measures_memory = True

    def __init__(self, scratch: Path, exe: list[str], bases: list[tuple[str, Path]]):
        self.root = scratch / "dockyard"
        self.exe = exe
        self.bases = bases
        self._commands: set[str] | None = None

    def env(self):
        # Bytecode as an installed wheel has it: the sandbox's PYTHONDONTWRITEBYTECODE=1 would
        # recompile every module on every command. The .pyc files go to bench/.cache, not src/.
        env = dict(os.environ, DOCKYARD_ROOT=str(self.root), PYTHONPYCACHEPREFIX=str(CACHE / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def _d(self, *args: str) -> list[str]:
        return [*self.exe, *args]

    def has(self, command: str) -> bool:
        """Is `dockyard COMMAND` there? (push/pull arrive with the registry client.)"""
        if self._commands is None:
            out = sh(self._d("--help"), env=self.env()).stdout
            tail = out.split("Commands:", 1)[-1]
            self._commands = {line.split()[0] for line in tail.splitlines() if line.strip()}
        return command in self._commands

    def reset(self, debian=True):
        if self.root.exists():
            sh(self._d("prune", "-a"), check=False, env=self.env())  # lets it unmount what it mounted
            shutil.rmtree(self.root, ignore_errors=True)
        for ref, tar in self.bases:
            if debian or ref != DEBIAN_REF:
                sh(self._d("import", str(tar), ref), env=self.env())

    def build(self, tag):
        return self._d("build", "-q", "-t", tag, ".")

    def run_true(self, tag):
        return self._d("run", "--rm", tag, "true")

    def retag(self, src, dest):
        sh(self._d("tag", src, dest), env=self.env())

    def push(self, tag, dest):
        if not self.has("push"):
            return None
        self.retag(tag, dest)
        return self._d("push", dest)

    def pull(self, dest):
        return self._d("pull", dest) if self.has("pull") else None

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)
