"""Docker's rules for the container's process, from the image config and flags.

ENTRYPOINT/CMD: a COMMAND replaces CMD; `--entrypoint` replaces ENTRYPOINT and
drops the image's CMD (so `--entrypoint ""` with no COMMAND has nothing to
run). The environment is built as the Docker engine builds it: PATH, HOSTNAME
(and TERM with -t) first, each replaced in place by the image's or the user's
value, then the rest; the user's -e values win over the image's ENV.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from dockyard.container.errors import InvalidOption
from dockyard.container.options import RunOptions

__all__ = ["DEFAULT_PATH", "container_env", "entrypoint_and_cmd", "healthcheck", "merged_env",
           "parse_signal", "stop_signal", "working_dir"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SECOND = 1_000_000_000
# Docker's HEALTHCHECK defaults, in nanoseconds as in the image config.
_HEALTH_DEFAULTS = {"Interval": 30 * _SECOND, "Timeout": 30 * _SECOND, "StartPeriod": 0, "Retries": 3}


def _cfg(image_config: Mapping[str, Any]) -> Mapping[str, Any]:
    return image_config.get("config") or {}


def entrypoint_and_cmd(image_config: Mapping[str, Any], command: list[str],
                       entrypoint: str | None) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) as the container's config records them."""
    cfg = _cfg(image_config)
    if entrypoint is not None:
        return ([entrypoint] if entrypoint else []), list(command)
    return list(cfg.get("Entrypoint") or []), list(command) if command else list(cfg.get("Cmd") or [])


def merged_env(image_config: Mapping[str, Any], user_env: list[str]) -> list[str]:
    """Config.Env: the user's values in their order, then the image's others."""
    out: dict[str, str] = {}
    for item in user_env:
        key, _, value = item.partition("=")
        out[key] = value  # a repeated key keeps its first place and its last value
    for item in _cfg(image_config).get("Env") or []:
        key, _, value = item.partition("=")
        out.setdefault(key, value)
    return [f"{k}={v}" for k, v in out.items()]


def container_env(config_env: list[str], hostname: str, tty: bool) -> list[str]:
    """The process environment: Docker's defaults replaced or extended by Config.Env."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if tty:
        env["TERM"] = "xterm"
    for item in config_env:
        key, _, value = item.partition("=")
        env[key] = value  # dicts keep the first position of a replaced key
    return [f"{k}={v}" for k, v in env.items()]


def working_dir(image_config: Mapping[str, Any], workdir: str | None) -> str:
    cwd = workdir or _cfg(image_config).get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise InvalidOption(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
    return cwd


def parse_signal(value: str | int) -> int:
    """SIGTERM, TERM, 15, RTMIN+3 -> a signal number."""
    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        for base in ("SIGRTMIN", "SIGRTMAX"):
            if name.startswith((base + "+", base + "-")):
                try:
                    number = int(getattr(signal, base)) + int(name[len(base):])
                except ValueError:
                    break
                if 0 < number < signal.NSIG:
                    return number
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if member is not None:
            return int(member)
    raise InvalidOption(f"invalid signal: {value}")


def stop_signal(image_config: Mapping[str, Any], opts: RunOptions) -> int:
    return parse_signal(opts.stop_signal or _cfg(image_config).get("StopSignal") or "SIGTERM")


def healthcheck(image_config: Mapping[str, Any], opts: RunOptions) -> dict[str, Any] | None:
    """The effective HEALTHCHECK (Docker's Test/Interval/Timeout/StartPeriod/Retries) or None.

    The --health-* flags override single fields of the image's check, as in Docker.
    """
    if opts.no_healthcheck:
        return None
    check = dict(_cfg(image_config).get("Healthcheck") or {})
    if opts.health_cmd is not None:
        check["Test"] = ["CMD-SHELL", opts.health_cmd]
    for key, value in (("Interval", opts.health_interval), ("Timeout", opts.health_timeout),
                       ("StartPeriod", opts.health_start_period)):
        if value is not None:
            check[key] = int(value * _SECOND)
    if opts.health_retries is not None:
        check["Retries"] = opts.health_retries
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise InvalidOption(f"unsupported healthcheck test: {test!r}")
    for key, default in _HEALTH_DEFAULTS.items():
        if not check.get(key):  # 0 means "inherit the default" in Docker's config
            check[key] = default
    return check
