"""`dockyard run`: start a container from an image, with `docker run`'s flags.

Exit codes as Docker's: the container's own, else 125 when dockyard could
not set the container up, 126 when the command cannot be executed and 127
when it is not found.
"""

from __future__ import annotations

import re
import sys

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """Go's duration syntax (1m30s, 500ms, 2s) in seconds; a bare number is seconds."""
    if text is None:
        return None
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise click.BadParameter(f"invalid duration {text!r} (for example 30s, 1m30s, 500ms)")
    return total


def _fail(message: str, code: int) -> None:
    click.echo(f"dockyard: error: {message}", err=True)
    sys.exit(code)


def _show_created(exc: BaseException) -> None:
    # `run -d` whose start failed: the container exists, and Docker prints its id first.
    container_id = getattr(exc, "container_id", None)
    if container_id:
        click.echo(container_id)


def build_options(params: dict) -> object:
    """RunOptions from the click parameters (shared with tests)."""
    from ..container import (
        RunOptions,
        parse_env_file,
        parse_mount,
        parse_publish,
        parse_security_opts,
        parse_tmpfs,
        parse_volume,
        resolve_env_items,
    )
    from ..container.options import parse_cpus, parse_memory

    env: list[str] = []
    for path in params["env_files"]:
        env += parse_env_file(path)
    env += resolve_env_items(list(params["env"]))
    mounts = [parse_volume(v) for v in params["volumes"]]
    mounts += [parse_mount(m) for m in params["mounts"]]
    mounts += [parse_tmpfs(t) for t in params["tmpfs"]]
    publish = [p for spec in params["publish"] for p in parse_publish(spec)]
    nnp, seccomp = parse_security_opts(list(params["security_opt"]))
    hosts = []
    for item in params["add_host"]:
        name, sep, ip = item.partition(":")
        if not sep or not name or not ip:
            raise click.BadParameter(f"invalid argument {item!r}: expected HOST:IP", param_hint="--add-host")
        hosts.append((name, ip))
    memory = parse_memory(params["memory"]) if params["memory"] else None
    swap_text = (params["memory_swap"] or "").strip()
    memory_swap = -1 if swap_text == "-1" else parse_memory(swap_text, "--memory-swap") if swap_text else None
    labels = {}
    for item in params["label"]:
        key, _, value = item.partition("=")
        labels[key] = value
    return RunOptions(
        command=list(params["command"]), entrypoint=params["entrypoint"], env=env,
        workdir=params["workdir"], user=params["user"], name=params["name"], hostname=params["hostname"],
        network=params["network"], publish=publish, publish_all=params["publish_all"], mounts=mounts,
        add_hosts=hosts, labels=labels, rm=params["rm"], detach=params["detach"],
        interactive=params["interactive"], tty=params["tty"], init=params["init"],
        read_only=params["read_only"], privileged=params["privileged"], cap_add=list(params["cap_add"]),
        cap_drop=list(params["cap_drop"]), no_new_privileges=nnp, seccomp=seccomp,
        stop_signal=params["stop_signal"], stop_timeout=params["stop_timeout"],
        health_cmd=params["health_cmd"], health_interval=parse_duration(params["health_interval"]),
        health_timeout=parse_duration(params["health_timeout"]),
        health_start_period=parse_duration(params["health_start_period"]),
        health_retries=params["health_retries"], no_healthcheck=params["no_healthcheck"],
        memory=memory, memory_swap=memory_swap,
        cpus=parse_cpus(params["cpus"]) if params["cpus"] else None,
        pids_limit=params["pids_limit"], userns=params["userns"] or "host")


class _RunCommand(click.Command):
    """Docker exits 125 on a bad `run` flag; click's default is 2."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = 125
            raise


@click.command(cls=_RunCommand,
               context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container id.")
@click.option("--rm", is_flag=True, help="Remove the container (and its anonymous volumes) when it exits.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and connect it.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", "env", multiple=True, help="Set an environment variable (K=V, or K from ours).")
@click.option("--env-file", "env_files", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="user[:group] to run as (names from the image).")
@click.option("--entrypoint", help="Override the image's ENTRYPOINT (and drop its CMD).")
@click.option("--name", help="Name the container.")
@click.option("-h", "--hostname", "hostname", help="Container host name.")
@click.option("--init", is_flag=True, help="Run a tiny init (tini) that reaps zombies and forwards signals.")
@click.option("--tmpfs", multiple=True, help="Mount a tmpfs: /path[:options].")
@click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only.")
@click.option("--network", "--net", "network", default="private", show_default=True,
              help="private (own namespace via slirp4netns), host or none.")
@click.option("-p", "--publish", multiple=True, help="Publish a port: [IP:][HOST:]CONTAINER[/udp].")
@click.option("-P", "--publish-all", is_flag=True, help="Publish every EXPOSEd port on a free port.")
@click.option("-v", "--volume", "volumes", multiple=True, help="Mount: /host:/ctr[:ro], name:/ctr or /ctr.")
@click.option("--mount", "mounts", multiple=True, help="Mount: type=bind|volume|tmpfs,source=..,target=..")
@click.option("--cap-add", multiple=True, help="Add a capability (or ALL).")
@click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL).")
@click.option("--security-opt", multiple=True,
              help="no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json.")
@click.option("--privileged", is_flag=True,
              help="Every capability the host has, no seccomp, all devices, writable /sys.")
@click.option("-m", "--memory", help="Memory limit (e.g. 64m, 1g; at least 6m).")
@click.option("--memory-swap", help="Memory plus swap limit (default twice --memory; -1: unlimited swap).")
@click.option("--cpus", help="Number of CPUs (e.g. 0.5: half of one CPU's time).")
@click.option("--pids-limit", type=int, help="Most processes (and threads) at once; 0 or -1: no limit.")
@click.option("--userns", help="host (default), or auto: map root to subordinate ids from /etc/subuid.")
@click.option("--add-host", multiple=True, help="Add a line to /etc/hosts (HOST:IP).")
@click.option("-l", "--label", multiple=True, help="Set a label on the container (K=V).")
@click.option("--stop-signal", help="Signal that `stop` sends (default: the image's, else SIGTERM).")
@click.option("--stop-timeout", type=int, help="Seconds `stop` waits before SIGKILL (default 10).")
@click.option("--health-cmd", help="Command to check health (replaces the image's HEALTHCHECK).")
@click.option("--health-interval", help="Time between health checks (e.g. 30s).")
@click.option("--health-timeout", help="Time a health check may take.")
@click.option("--health-start-period", help="Start-up time during which failures do not count.")
@click.option("--health-retries", type=int, help="Failures in a row that make it unhealthy.")
@click.option("--no-healthcheck", is_flag=True, help="Disable the image's HEALTHCHECK.")
@click.pass_context
def run(ctx, image, **params):
    """Run a command in a new container."""
    from .. import api
    from ..container import run as run_container
    from ..container.run import NOT_A_TTY, check_tty
    from ..errors import DockyardError
    from ..runtime.runc import ContainerStartError
    from .common import _store

    try:
        opts = build_options(params)
        try:
            check_tty(opts, None)
        except DockyardError:
            click.echo(NOT_A_TTY, err=True)  # Docker's words and exit status, nothing created
            sys.exit(1)
        store = _store(ctx)
        img = api.get_image(store, image)
        if opts.publish and opts.network == "host":
            click.echo("WARNING: Published ports are discarded when using host network mode", err=True)
        container_id, code = run_container(store, img, opts, image_name=image)
    except ContainerStartError as exc:
        _show_created(exc)
        if exc.shown:
            sys.exit(exc.exit_code)
        _fail(str(exc), exc.exit_code)
    except click.BadParameter:
        raise
    except DockyardError as exc:
        _show_created(exc)
        _fail(str(exc), 125)
    if code is None:
        click.echo(container_id)
        return
    sys.exit(code)
