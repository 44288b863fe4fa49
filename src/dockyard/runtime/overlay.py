"""overlayfs mounts for RUN steps: image layers below, the step's changes above.

The upper directory must stay a plain diff that the layer code can walk
(whiteouts as 0/0 character devices, `trusted.overlay.opaque` dirs), so the
features that write other metadata into it are turned off explicitly:
redirect_dir (renamed dirs become xattr redirects), metacopy (metadata-only
copy-ups) and index (hard-link index, which also pins the layers together).

The mount options must fit in one page (4095 bytes). Long absolute paths and
many layers overflow that; then every layer is named through a short
`/proc/self/fd/N` link to an O_PATH descriptor opened just for the mount
call (the kernel resolves them while mounting). That also sidesteps paths
containing ':' or ',' which the option syntax cannot carry. About 200 layers
fit that way; Docker itself stops at 128.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dockyard.errors import ContainerRuntimeError
from dockyard.runtime._libc import libc

__all__ = ["mount_overlay", "mounted", "overlay_options", "unmount"]

_PAGE_LIMIT = os.sysconf("SC_PAGESIZE") - 1  # the kernel copies one page, NUL included
_FIXED_OPTIONS = "index=off,metacopy=off,redirect_dir=off"
_MNT_DETACH = 2



def _oserror(what: str, target: Path) -> ContainerRuntimeError:
    err = ctypes.get_errno()
    return ContainerRuntimeError(f"{what} {target}: {os.strerror(err)}")


def _safe_in_options(path: str) -> bool:
    return not any(c in path for c in ",:\\\n")


def overlay_options(lowers: Sequence[str], upper: str, work: str, extra: str = "") -> str:
    """The option string for the given (already chosen) path spellings."""
    tail = f",{extra}" if extra else ""
    fixed = _FIXED_OPTIONS
    if "userxattr" in extra:  # redirect_dir=off may mean "follow", which userxattr refuses
        fixed = fixed.replace("redirect_dir=off", "redirect_dir=nofollow")
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work},{fixed}{tail}"


def _empty_lower(work: Path) -> Path:
    # overlayfs needs at least one lower layer; an empty sibling of the work
    # dir stands in (it must not sit inside work or upper: the kernel refuses
    # overlapping layers).
    empty = work.with_name(work.name + ".empty-lower")
    empty.mkdir(mode=0o755, exist_ok=True)
    return empty


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path, *,
                  volatile: bool = False) -> None:
    """Mount an overlay of `lowers` (top-most first) + `upper` on `target`.

    An empty `lowers` mounts just the upper dir (over an empty lower that
    is created next to `work`). `upper`, `work` and `target` must exist, and
    `upper`/`work` must be on the same filesystem.

    `volatile` (Linux 5.10+) skips every sync of the upper filesystem: the
    unmount of a plain overlay syncs the whole filesystem under it, which
    costs tens to hundreds of milliseconds on a busy disk. Right for a
    container's throw-away layer, wrong for a build step's layer (after a
    crash the upper dir cannot be trusted, and is not mounted again).
    """
    layers = [Path(p) for p in lowers] or [_empty_lower(Path(work))]
    names = [str(p) for p in layers]
    extra = ",".join(o for o in (_userns_options(), "volatile" if volatile else "") if o)
    data = overlay_options(names, str(upper), str(work), extra)
    with ExitStack() as stack:
        if len(data) > _PAGE_LIMIT or not all(_safe_in_options(n) for n in [*names, str(upper), str(work)]):
            fds = []
            for path in [*layers, Path(upper), Path(work)]:
                try:
                    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError as exc:
                    raise ContainerRuntimeError(f"overlay layer {path}: {exc.strerror}") from exc
                stack.callback(os.close, fd)
                fds.append(f"/proc/self/fd/{fd}")
            data = overlay_options(fds[:-2], fds[-2], fds[-1], extra)
            if len(data) > _PAGE_LIMIT:
                raise ContainerRuntimeError(
                    f"too many layers for one overlay mount ({len(layers)}): the options exceed one page")
        rc = libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, data.encode())
        if rc != 0 and volatile and ctypes.get_errno() == errno.EINVAL:
            # A kernel before 5.10 has no "volatile": mount without it.
            data = data.removesuffix(",volatile")
            rc = libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, data.encode())
        if rc != 0:
            raise _oserror("mounting overlay on", Path(target))


def _userns_options() -> str:
    # In a user namespace (rootless) overlayfs may not use trusted.* xattrs:
    # userxattr keeps opaque marks in user.overlay.* instead. Whiteouts stay
    # 0/0 character devices, which the kernel lets a user namespace create.
    from dockyard.rootless import in_user_namespace

    global _USERXATTR
    if _USERXATTR is None:
        _USERXATTR = "userxattr" if in_user_namespace() else ""
    return _USERXATTR


_USERXATTR: str | None = None


def unmount(target: Path) -> None:
    """Unmount `target`; when it is busy, detach it lazily instead."""
    path = os.fsencode(target)
    if libc.umount2(path, 0) == 0:
        return
    if ctypes.get_errno() == errno.EBUSY and libc.umount2(path, _MNT_DETACH) == 0:
        return
    raise _oserror("unmounting", Path(target))


@contextmanager
def mounted(lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> Iterator[Path]:
    """`with mounted(...) as rootfs:` mounts, yields `target`, always unmounts."""
    mount_overlay(lowers, upper, work, target)
    try:
        yield Path(target)
    finally:
        unmount(target)
