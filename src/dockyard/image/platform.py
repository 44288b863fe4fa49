"""Platforms (os/architecture/variant) and Docker's rules for matching them.

``Platform.parse`` keeps what it is given, so ``str`` is its exact inverse;
comparisons go through ``normalized()``, which applies containerd's aliases
and variant defaults (arm64 means arm64/v8, arm means arm/v7, amd64 means
amd64/v1). ``compatible()`` lists what a machine can also run, best first,
the order Docker uses to pick an image from an index.
"""

from __future__ import annotations

import platform as _host
import re
from dataclasses import dataclass, replace
from typing import Any

from dockyard.errors import go_quote
from dockyard.image._decode import (
    check_str,
    check_str_list,
    expect_object,
    fail,
    require,
)
from dockyard.image.errors import ImageFormatError

__all__ = ["Platform"]

_PART = re.compile(r"[A-Za-z0-9_-]+")
_VARIANT = re.compile(r"[A-Za-z0-9_.-]+")

# platform.machine() -> (GOARCH, variant)
_MACHINES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "x86": ("386", None),
    "ppc64le": ("ppc64le", None),
    "ppc64": ("ppc64", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "mips64el": ("mips64le", None),
    "loongarch64": ("loong64", None),
}


def _version(variant: str | None) -> int | None:
    """'v7' -> 7; anything else -> None."""
    if variant and variant[0] == "v" and variant[1:].isdigit():
        return int(variant[1:])
    return None


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, s: str) -> Platform:
        """``os/arch`` or ``os/arch/variant``, as ``--platform`` takes it."""
        parts = s.split("/") if isinstance(s, str) else []
        ok = (
            len(parts) in (2, 3)
            and all(_PART.fullmatch(p) for p in parts[:2])
            and (len(parts) == 2 or _VARIANT.fullmatch(parts[2]) is not None)
        )
        if not ok:
            raise ImageFormatError(
                f"invalid platform {go_quote(s)}: want os/arch or os/arch/variant"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        head = f"{self.os}/{self.architecture}"
        return f"{head}/{self.variant}" if self.variant else head

    @classmethod
    def host(cls, machine: str | None = None, system: str | None = None) -> Platform:
        """The platform of this machine (arguments override what Python reports)."""
        machine = (machine if machine is not None else _host.machine()).lower()
        system = (system if system is not None else _host.system()).lower()
        arch, variant = _MACHINES.get(machine, (machine, None))
        return cls(system, arch, variant)

    def normalized(self) -> Platform:
        """The canonical spelling containerd compares (aliases, variant defaults)."""
        os = self.os.lower()
        if os == "macos":
            os = "darwin"
        arch = self.architecture.lower()
        variant = self.variant.lower() if self.variant else None
        if arch == "i386":
            arch, variant = "386", None
        elif arch in ("x86_64", "x86-64", "amd64"):
            arch = "amd64"
            if variant == "v1":
                variant = None
        elif arch in ("aarch64", "arm64"):
            arch = "arm64"
            if variant in ("8", "v8", "v8.0"):
                variant = None
            elif variant in ("9", "9.0", "v9.0"):
                variant = "v9"
        elif arch == "armhf":
            arch, variant = "arm", "v7"
        elif arch == "armel":
            arch, variant = "arm", "v6"
        elif arch == "arm":
            if variant in (None, "7"):
                variant = "v7"
            elif variant in ("5", "6", "8"):
                variant = "v" + variant
        return replace(self, os=os, architecture=arch, variant=variant)

    def matches(self, other: Platform) -> bool:
        """Same os, architecture and variant once both are normalized."""
        a, b = self.normalized(), other.normalized()
        return (a.os, a.architecture, a.variant) == (b.os, b.architecture, b.variant)

    def compatible(self) -> tuple[Platform, ...]:
        """This platform and the ones it can also run, most preferred first.

        amd64/vN runs amd64/v(N-1)..v1 and 386; arm/vN runs arm/v(N-1)..v5;
        arm64 runs older arm64 revisions and then arm/v8..v5.
        """
        p = self.normalized()
        out = [p]
        if p.architecture == "amd64":
            level = _version(p.variant) or 1
            out += [
                replace(p, variant=f"v{n}" if n > 1 else None)
                for n in range(level - 1, 0, -1)
            ]
            out.append(replace(p, architecture="386", variant=None))
        elif p.architecture == "arm":
            arm_level = _version(p.variant) or 0
            out += [replace(p, variant=f"v{n}") for n in range(arm_level - 1, 4, -1)]
        elif p.architecture == "arm64":
            out += _older_arm64(p)
            out += replace(p, architecture="arm", variant="v8").compatible()
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        """The OCI ``platform`` object, fields in the spec's order."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "platform") -> Platform:
        obj = expect_object(value, where)
        arch = check_str(require(obj, "architecture", where), f"{where}.architecture")
        os = check_str(require(obj, "os", where), f"{where}.os")
        opt: dict[str, Any] = {}
        for key, name in (("variant", "variant"), ("os.version", "os_version")):
            if obj.get(key) is not None:
                opt[name] = check_str(obj[key], f"{where}.{key}") or None
        for key, name in (("os.features", "os_features"), ("features", "features")):
            if obj.get(key) is not None:
                opt[name] = tuple(check_str_list(obj[key], f"{where}.{key}"))
        if not arch or not os:
            raise fail(where, "architecture and os must not be empty")
        return cls(os, arch, **opt)


def _older_arm64(p: Platform) -> list[Platform]:
    """Earlier arm64 revisions: v8.x runs v8.(x-1)..v8; v9.x runs v9.(x-1)..v9, v8.(x+5)..v8."""
    major_minor = (p.variant or "v8").removeprefix("v").split(".")
    if not all(part.isdigit() for part in major_minor) or len(major_minor) > 2:
        return []
    major = int(major_minor[0])
    minor = int(major_minor[1]) if len(major_minor) == 2 else 0

    def named(maj: int, mnr: int) -> Platform:
        if maj == 8 and mnr == 0:
            return replace(p, variant=None)
        return replace(p, variant=f"v{maj}" if mnr == 0 else f"v{maj}.{mnr}")

    out = [named(major, m) for m in range(minor - 1, -1, -1)]
    if major == 9:
        # v9.0 forked from v8.5, so v9.x also runs v8.(x+5), capped at v8.9
        minor = min(minor + 5, 9)
        out += [named(8, m) for m in range(minor, -1, -1)]
    return out
