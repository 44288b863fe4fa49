"""What the benchmark runs on: local registries, base rootfs tarballs, workload contexts.

Adapted from shared/bench/fixtures.sh, make_bigctx.sh and compare.py's prepare_app()
(the reference of how the project is judged); nothing here reads shared/.

Everything generated is cached under bench/.cache (git-ignored) and is the same
bytes on every machine: contexts come from seeded random generators.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
WORKLOADS = HERE / "workloads"
BASE_REGISTRY = "127.0.0.1:5000"
BUSYBOX_REF = f"{BASE_REGISTRY}/library/busybox:latest"
DEBIAN_REF = f"{BASE_REGISTRY}/library/debian:bookworm"
DOCKER = "/usr/bin/docker"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(argv, *, check=True, env=None, cwd=None, quiet=True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, env=env, cwd=cwd, text=True, shell=isinstance(argv, str),
                       stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
    if check and p.returncode != 0:
        raise RuntimeError(f"failed ({p.returncode}): {argv}\n{(p.stdout or '')[-3000:]}")
    return p


# -- registries -----------------------------------------------------------------

def registry_up(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def manifest_exists(ref: str) -> bool:
    host, _, rest = ref.partition("/")
    name, _, tag = rest.rpartition(":")
    req = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status == 200
    except Exception:
        return False


class Registry:
    """A CNCF Distribution registry (`docker-registry serve`) with its data in a
    scratch directory; started only if nothing answers on the address already."""

    def __init__(self, addr: str, scratch: Path):
        self.addr = addr
        self.dir = scratch / f"registry-{addr.rsplit(':', 1)[1]}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Registry:
        if registry_up(self.addr):
            return self
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        cfg = self.dir / "config.yml"
        cfg.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {self.dir}/data
  delete:
    enabled: true
http:
  addr: {self.addr}
""")
        with open(self.dir / "log", "w") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(100):
            if registry_up(self.addr):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"registry on {self.addr} did not start; see {self.dir}/log")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart_empty(self) -> None:
        """Stop (if ours) and start again on empty storage: a cold registry."""
        if self.proc is None and registry_up(self.addr):
            raise RuntimeError(f"{self.addr} is served by someone else; cannot empty it")
        self.stop()
        self.start()


# -- base images ----------------------------------------------------------------

def busybox_tar() -> Path:
    """A busybox-static rootfs, as shared/bench/fixtures.sh makes it."""
    out = CACHE / "busybox.tar"
    if out.exists():
        return out
    busybox = shutil.which("busybox") or "/bin/busybox"
    work = Path(tempfile.mkdtemp(dir=CACHE))
    root = work / "rootfs"
    for d in ("bin", "etc", "tmp", "root"):
        (root / d).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for app in sh([busybox, "--list"]).stdout.split():
        if app != "busybox":
            os.symlink("busybox", root / "bin" / app)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    os.chmod(root / "tmp", 0o1777)
    sh(["tar", "--numeric-owner", "-C", str(root), "-cf", str(work / "busybox.tar"), "."])
    os.replace(work / "busybox.tar", out)
    shutil.rmtree(work)
    return out


def debian_tar() -> tuple[Path, str]:
    """A Debian bookworm minbase rootfs from mmdebstrap; busybox stands in when
    mmdebstrap or the mirror is missing (the app workload runs on either)."""
    out = CACHE / "debian.tar"
    if out.exists():
        return out, "debian bookworm minbase (mmdebstrap)"
    if shutil.which("mmdebstrap"):
        log("making the Debian base with mmdebstrap --variant=minbase bookworm (once)")
        tmp = CACHE / "debian.part.tar"
        p = sh(["mmdebstrap", "--variant=minbase", "--format=tar", "--quiet", "bookworm", str(tmp)], check=False)
        if p.returncode == 0:
            os.replace(tmp, out)
            return out, "debian bookworm minbase (mmdebstrap)"
        log(f"mmdebstrap failed, using busybox as the 'debian' base:\n{p.stdout[-800:]}")
    return busybox_tar(), "busybox (mmdebstrap unavailable)"


def seed_registry() -> str:
    """Push the two bases to 127.0.0.1:5000 (through Docker) unless there."""
    deb, what = debian_tar()
    for ref, tar in ((BUSYBOX_REF, busybox_tar()), (DEBIAN_REF, deb)):
        if not manifest_exists(ref):
            sh([DOCKER, "import", str(tar), ref])
            sh([DOCKER, "push", ref])
    return what


# -- workloads --------------------------------------------------------------------

def _done(path: Path) -> bool:
    return (path / ".done").exists()


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def app_context() -> Path:
    """workloads/app plus 2,000 generated Python sources (14 MB), as compare.py's prepare_app()."""
    ctx = CACHE / "app"
    if _done(ctx):
        shutil.copy2(WORKLOADS / "app" / "Dockerfile", ctx / "Dockerfile")
        return ctx
    _fresh(ctx)
    for f in (WORKLOADS / "app").iterdir():
        shutil.copy2(f, ctx / f.name)
    rnd = random.Random(7)
    for d in range(40):
        (ctx / "src" / f"pkg{d}").mkdir(parents=True)
        for f in range(50):
            (ctx / "src" / f"pkg{d}" / f"mod{f}.py").write_text("".join(
                f"def f{i}(x):\n    return x*{rnd.randint(1, 999)}\n" for i in range(rnd.randint(20, 300))))
    (ctx / ".done").touch()
    return ctx


APP_EDIT = Path("src/pkg3/mod7.py")


def edit_app(ctx: Path) -> None:
    """A one-file edit no earlier build has seen (appends a unique comment)."""
    with open(ctx / APP_EDIT, "a") as f:
        f.write(f"# edit {time.time_ns()}\n")


def undo_app_edits(ctx: Path) -> None:
    path = ctx / APP_EDIT
    lines = path.read_text().splitlines(keepends=True)
    keep = [line for line in lines if not line.startswith("# edit ")]
    if keep != lines:
        path.write_text("".join(keep))


def bigctx_context() -> Path:
    """20,000 small files (200 B-8 KB, 200 directories) and one 256 MiB file, as make_bigctx.sh."""
    ctx = CACHE / "bigctx"
    if not _done(ctx):
        log("generating the large context (20,000 files + 256 MiB, once)")
        _fresh(ctx)
        rnd = random.Random(11)
        for d in range(200):
            p = ctx / "tree" / f"d{d:03d}"
            p.mkdir(parents=True)
            for f in range(100):
                (p / f"f{f:03d}.txt").write_bytes(rnd.randbytes(rnd.randint(200, 8000)))
        _write_random(ctx / "big.bin", 256, rnd)
        (ctx / ".done").touch()
    shutil.copy2(WORKLOADS / "bigctx" / "Dockerfile", ctx / "Dockerfile")
    return ctx


def _write_random(path: Path, mib: int, rnd: random.Random) -> None:
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(rnd.randbytes(1 << 20))


def files_context(n: int) -> Path:
    """n files of 1-2 KiB, 100 per directory."""
    ctx = CACHE / f"files-{n}"
    if not _done(ctx):
        log(f"generating the {n}-file context (once)")
        _fresh(ctx)
        rnd = random.Random(n)
        blob = rnd.randbytes(4096)
        for i in range(n):
            d = ctx / "tree" / f"d{i // 100:04d}"
            if i % 100 == 0:
                d.mkdir(parents=True)
            off = rnd.randrange(2048)
            (d / f"f{i % 100:02d}").write_bytes(i.to_bytes(4, "little") + blob[off:off + 1024 + off // 2])
        (ctx / ".done").touch()
    shutil.copy2(WORKLOADS / "scale-files" / "Dockerfile", ctx / "Dockerfile")
    return ctx


def bytes_context(mib: int) -> Path:
    """One file of `mib` MiB of incompressible bytes."""
    ctx = CACHE / f"bytes-{mib}m"
    if not _done(ctx):
        log(f"generating the {mib} MiB context (once)")
        _fresh(ctx)
        _write_random(ctx / "blob.bin", mib, random.Random(mib))
        (ctx / ".done").touch()
    shutil.copy2(WORKLOADS / "scale-bytes" / "Dockerfile", ctx / "Dockerfile")
    return ctx
