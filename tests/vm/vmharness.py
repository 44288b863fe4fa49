"""A throwaway Linux VM for tests that need a kernel setup this host lacks.

The guest is a Debian kernel (unpacked by scripts/setup into .cache/vm/kernel,
never installed) under qemu-system-x86_64, with an initramfs built here:
busybox-static, the modules for 9p and overlayfs, and an init script. The
host's root filesystem is shared read-only over 9p (`-virtfs`); the guest
chroots into it with tmpfs on /tmp, /run and /var/tmp (HOME=/tmp), mounts only
cgroup2 at /sys/fs/cgroup with every controller enabled in
cgroup.subtree_control, and runs one Python script with the host's
interpreter and the repository's sources. The script writes its findings
to a second, writable share; the serial console goes to a log file.

KVM is used when it boots a guest; nested KVM that hangs (some microVM hosts)
falls back to TCG. The probe's answer is cached per host kernel.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DOCKYARD_VM_CACHE", REPO / ".cache" / "vm"))
QEMU = shutil.which("qemu-system-x86_64")
BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
# 9p over virtio-pci for the shares, overlayfs for dockyard's containers,
# tun for slirp4netns (`dockyard run`'s default private network).
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "tun")

_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod "/mods/$m" || echo "vm: insmod $m failed"; done
opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /host
mount -t 9p -o "$opts,ro,cache=loose" host /host || { echo "vm: no host share"; poweroff -f; }
mkdir -p /ro
mount --bind /host /ro
for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "/host/$d"; done
# what the guest runs from, when it lives under one of those (a checkout in /tmp)
for p in $(cat /keep); do mkdir -p "/host$p" && mount --bind "/ro$p" "/host$p"; done
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm /host/tmp/out
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
for c in $(cat /host/sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /host/sys/fs/cgroup/cgroup.subtree_control
done
# as on a systemd host: the root cgroup holds no test process, a service does
svc=/host/sys/fs/cgroup/system.slice/guest.service
mkdir -p $svc
for c in $(cat /host/sys/fs/cgroup/system.slice/cgroup.controllers); do
  echo "+$c" > /host/sys/fs/cgroup/system.slice/cgroup.subtree_control
done
echo $$ > $svc/cgroup.procs
mount -t 9p -o "$opts,cache=none" out /host/tmp/out
echo "vm: ready"
chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$(cat /pythonpath)" \
  $(cat /command) > /host/tmp/out/stdout 2> /host/tmp/out/stderr
echo $? > /host/tmp/out/exit
sync
echo "vm: done"
poweroff -f
"""


class VMUnavailable(Exception):
    """What the host lacks to boot the VM (the reason to skip)."""


@dataclass
class VMRun:
    exit_code: int | None  # the guest command's, None when it never finished
    stdout: str
    stderr: str
    console: str  # the serial console: kernel messages and the init script's
    out: Path  # the writable share, as the guest left it
    accel: str
    seconds: float


def kernel() -> tuple[Path, Path]:
    """(vmlinuz, modules dir) from the cache scripts/setup fills."""
    images = sorted((CACHE / "kernel" / "boot").glob("vmlinuz-*"))
    if not images:
        raise VMUnavailable(f"no kernel in {CACHE / 'kernel'} (scripts/setup fetches it)")
    release = images[-1].name[len("vmlinuz-"):]
    return images[-1], CACHE / "kernel" / "lib" / "modules" / release


def boot_image() -> Path:
    """The kernel to boot: vmlinux unpacked from the bzImage when possible.

    qemu boots an uncompressed ELF kernel directly (PVH entry), which spares
    the guest the xz decompression: 20 s under emulation.
    """
    vmlinuz, _ = kernel()
    elf = vmlinuz.with_name("vmlinux" + vmlinuz.name[len("vmlinuz"):])
    if elf.exists():
        return elf
    data = vmlinuz.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    try:
        if start < 0:
            return vmlinuz
        unpacked = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError:
        return vmlinuz
    if not unpacked.startswith(b"\x7fELF"):
        return vmlinuz
    tmp = elf.with_name(elf.name + f".{os.getpid()}")
    tmp.write_bytes(unpacked)
    os.replace(tmp, elf)
    return elf


def check_host() -> None:
    """Raise VMUnavailable unless qemu, busybox-static and the kernel are here."""
    if QEMU is None:
        raise VMUnavailable("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    if BUSYBOX is None:
        raise VMUnavailable("busybox-static is not installed")
    kernel()


def _module_paths(modules_dir: Path, names: tuple[str, ...]) -> list[Path]:
    """The .ko files for `names` and what they depend on, dependencies first."""
    found = {p.name[:-3].replace("-", "_"): p for p in modules_dir.rglob("*.ko")}
    order: list[Path] = []

    def add(name: str) -> None:
        path = found.get(name.replace("-", "_"))
        if path is None:
            raise VMUnavailable(f"kernel module {name} is not in {modules_dir}")
        if path in order:
            return
        match = re.search(rb"\0depends=([^\0]*)\0", path.read_bytes())
        for dep in filter(None, (match.group(1).decode() if match else "").split(",")):
            add(dep)
        order.append(path)

    for name in names:
        add(name)
    return order


def _cpio(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A gzipped newc archive of {path: (mode, data)}; a symlink's data is its target."""
    out = bytearray()
    for ino, (name, (mode, data)) in enumerate([*files.items(), ("TRAILER!!!", (0, b""))], 1):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return gzip.compress(bytes(out), compresslevel=1)


_TMPFS = ("/tmp", "/run", "/var/tmp")  # tmpfs in the guest


def _kept_paths(paths: list[str]) -> list[str]:
    """Those of `paths` (the repository, the interpreter) that the guest's tmpfs would hide."""
    out: list[str] = []
    for path in sorted({os.path.realpath(p) for p in paths if p}):  # parents first
        if any(path.startswith(k + "/") for k in out):
            continue
        if any(path.startswith(t + "/") for t in _TMPFS):
            if " " in path:
                raise VMUnavailable(f"cannot share {path!r} with the guest (a space in the path)")
            out.append(path)
    return out


def initramfs(command: list[str], pythonpath: str) -> bytes:
    _, modules_dir = kernel()
    assert BUSYBOX is not None
    files: dict[str, tuple[int, bytes]] = {}
    for d in ("bin", "dev", "proc", "sys", "mods"):
        files[d] = (stat.S_IFDIR | 0o755, b"")
    files["bin/busybox"] = (stat.S_IFREG | 0o755, Path(BUSYBOX).read_bytes())
    files["bin/sh"] = (stat.S_IFLNK | 0o777, b"busybox")
    mods = _module_paths(modules_dir, MODULES)
    for mod in mods:
        files[f"mods/{mod.name}"] = (stat.S_IFREG | 0o644, mod.read_bytes())
    files["modules"] = (stat.S_IFREG | 0o644, " ".join(m.name for m in mods).encode())
    files["init"] = (stat.S_IFREG | 0o755, _INIT.encode())
    files["command"] = (stat.S_IFREG | 0o644, " ".join(command).encode())
    files["pythonpath"] = (stat.S_IFREG | 0o644, pythonpath.encode())
    keep = _kept_paths([str(REPO), sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
                        *pythonpath.split(":")])
    files["keep"] = (stat.S_IFREG | 0o644, " ".join(keep).encode())
    return _cpio(files)


def _qemu_args(vmlinuz: Path, initrd: Path, accel: str, *, memory_mb: int, cpus: int,
               out: Path | None) -> list[str]:
    assert QEMU is not None
    args = [QEMU, "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
            "-m", str(memory_mb), "-smp", str(cpus), "-kernel", str(vmlinuz), "-initrd", str(initrd),
            "-append", "console=ttyS0 quiet panic=-1 systemd.unified_cgroup_hierarchy=1"]
    if accel == "kvm":
        # -cpu host trips over MSRs a nested hypervisor may not forward
        args += ["-enable-kvm", "-cpu", "host,-arch-capabilities"]
    else:
        args += ["-accel", "tcg,thread=multi", "-cpu", "max"]
    args += ["-virtfs", "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap"]
    if out is not None:
        args += ["-virtfs", f"local,path={out},mount_tag=out,security_model=passthrough"]
    return args


def _probe_kvm() -> bool:
    """Whether a KVM guest gets as far as its init within a few seconds."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    vmlinuz = boot_image()
    assert BUSYBOX is not None
    init = "#!/bin/busybox sh\n/bin/busybox echo vm-probe-ok\n/bin/busybox poweroff -f\n"
    image = _cpio({"bin": (stat.S_IFDIR | 0o755, b""),
                   "bin/busybox": (stat.S_IFREG | 0o755, Path(BUSYBOX).read_bytes()),
                   "init": (stat.S_IFREG | 0o755, init.encode())})
    with tempfile.TemporaryDirectory() as tmp:
        initrd = Path(tmp) / "probe.gz"
        initrd.write_bytes(image)
        args = _qemu_args(vmlinuz, initrd, "kvm", memory_mb=256, cpus=1, out=None)
        try:
            proc = subprocess.run(args, capture_output=True, timeout=20, stdin=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False
    return b"vm-probe-ok" in proc.stdout


def accelerator() -> str:
    """"kvm" or "tcg"; DOCKYARD_VM_ACCEL overrides the cached probe."""
    forced = os.environ.get("DOCKYARD_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    vmlinuz, _ = kernel()
    note = CACHE / f"accel-{os.uname().release}-{vmlinuz.name}"
    try:
        return note.read_text().strip()
    except OSError:
        pass
    accel = "kvm" if _probe_kvm() else "tcg"
    note.write_text(accel + "\n")
    return accel


def run_python(script: Path, *args: str, timeout: float = 600, memory_mb: int = 2048,
               cpus: int = 2, workdir: Path | None = None) -> VMRun:
    """Boot the VM, run `script` with this interpreter and the repository's
    sources (src/, tests/) on its path, and power off.

    The script sees its output directory as /tmp/out (writable, kept in
    `VMRun.out`); everything else writable in the guest is tmpfs.
    """
    check_host()
    accel = accelerator()
    vmlinuz = boot_image()
    sources = [str(REPO / "src"), str(REPO / "tests"), *os.environ.get("PYTHONPATH", "").split(":")]
    pythonpath = ":".join(dict.fromkeys(p for p in sources if p))
    # The guest cannot write bytecode to the read-only share, and compiling
    # every module under emulation costs seconds: compile here first.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", str(REPO / "src"), str(REPO / "tests")],
                   capture_output=True, check=False)
    work = Path(workdir or tempfile.mkdtemp(prefix="dockyard-vm-"))
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    initrd = work / "initrd.gz"
    initrd.write_bytes(initramfs([sys.executable, str(Path(script).resolve()), *args], pythonpath))
    started = time.monotonic()
    console = work / "console.log"
    with open(console, "wb") as log:
        proc = subprocess.Popen(_qemu_args(vmlinuz, initrd, accel, memory_mb=memory_mb, cpus=cpus, out=out),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - started

    def read(name: str) -> str:
        try:
            return (out / name).read_text(errors="replace")
        except OSError:
            return ""

    code = read("exit").strip()
    return VMRun(exit_code=int(code) if code.isdigit() else None, stdout=read("stdout"),
                 stderr=read("stderr"), console=console.read_text(errors="replace"), out=out,
                 accel=accel, seconds=seconds)


def results(run: VMRun, name: str = "results.json") -> dict:
    """The JSON the guest script left in its output directory."""
    try:
        return json.loads((run.out / name).read_text())
    except (OSError, ValueError) as exc:
        raise AssertionError(f"the guest left no {name} ({exc}); exit {run.exit_code}, "
                             f"stderr:\n{run.stderr[-3000:]}\nconsole:\n{run.console[-3000:]}") from None
