"""Container and volume commands: ps, logs, stop, kill, rm, exec, wait, container, volume.

`COMMANDS` lists them for the main group. They need only the store's root
directory (containers and volumes are plain files there), never its database.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click


def _root(ctx: click.Context) -> Path:
    from ..store.store import default_root

    obj = ctx.find_root().ensure_object(dict)
    return Path(obj.get("root") or default_root())


def _human(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _since(stamp: str) -> float:
    import datetime as dt

    try:
        when = dt.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return max(0.0, time.time() - when.timestamp())


def status_text(state: dict) -> str:
    """ps's STATUS column: Up 3 seconds (healthy), Exited (0) 2 minutes ago, Created."""
    status = state.get("Status")
    if status == "running":
        health = (state.get("Health") or {}).get("Status")
        text = "Up " + _human(_since(state.get("StartedAt", "")))
        if health == "starting":
            return text + " (health: starting)"
        return text + (f" ({health})" if health else "")
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {_human(_since(state.get('FinishedAt', '')))} ago"
    return str(status or "unknown").capitalize()


def _ports(doc: dict) -> str:
    out = []
    for key, bindings in sorted((doc.get("NetworkSettings") or {}).get("Ports", {}).items()):
        for b in bindings or []:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}")
    return ", ".join(out)


def _command(doc: dict, no_trunc: bool) -> str:
    text = " ".join([doc.get("Path", ""), *doc.get("Args", [])])
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default: running).")
@click.option("-q", "--quiet", is_flag=True, help="Only show ids.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.pass_context
def ps(ctx, all_, quiet, no_trunc):
    """List containers."""
    from ..container import list_containers

    ctrs = list_containers(_root(ctx), all_=all_)
    if quiet:
        for c in ctrs:
            click.echo(c.id if no_trunc else c.id[:12])
        return
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
    for c in ctrs:
        image = (c.doc.get("Config") or {}).get("Image") or c.doc.get("Image", "")
        image = image.removeprefix("docker.io/library/")
        rows.append((c.id if no_trunc else c.id[:12], image, _command(c.doc, no_trunc),
                     _human(_since(c.doc.get("Created", ""))) + " ago", status_text(c.state),
                     _ports(c.doc) if c.running else "", c.name))
    _table(rows)


@click.command()
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow the log output.")
@click.option("-n", "--tail", default="all", help="Lines to show from the end (default all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.pass_context
def logs(ctx, container, follow, tail, timestamps):
    """Show a container's output (kept unless it ran with --rm)."""
    from ..container import container_logs

    count = None if tail == "all" else int(tail)
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    try:
        for stream, data, stamp in container_logs(_root(ctx), container, follow=follow, tail=count):
            out = streams.get(stream, sys.stdout.buffer)
            out.write((stamp + " ").encode() + data if timestamps else data)
            out.flush()
    except BrokenPipeError:
        pass


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing it.")
@click.pass_context
def stop(ctx, containers, timeout):
    """Stop running containers (STOPSIGNAL, then SIGKILL after a timeout)."""
    from ..container import stop as stop_container

    _each(containers, lambda ref: stop_container(_root(ctx), ref, timeout))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send (default KILL).")
@click.pass_context
def kill(ctx, containers, sig):
    """Send a signal to running containers."""
    from ..container import kill as kill_container

    _each(containers, lambda ref: kill_container(_root(ctx), ref, sig))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Kill and remove a running container.")
@click.option("-v", "--volumes", is_flag=True, help="Also remove its anonymous volumes.")
@click.pass_context
def rm(ctx, containers, force, volumes):
    """Remove containers."""
    from ..container import remove_container

    _each(containers, lambda ref: remove_container(_root(ctx), ref, force=force, volumes=volumes))


def _each(refs, action) -> None:
    """Act on every ref, print it when done; report failures and exit 1 at the end."""
    from ..errors import DockyardError

    failed = False
    for ref in refs:
        try:
            action(ref)
        except DockyardError as exc:
            click.echo(f"dockyard: error: {exc}", err=True)
            failed = True
            continue
        click.echo(ref)
    if failed:
        sys.exit(1)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait(ctx, containers):
    """Block until containers stop, then print their exit codes."""
    from ..container import wait as wait_container

    for ref in containers:
        click.echo(wait_container(_root(ctx), ref))


@click.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and connect it.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-e", "--env", multiple=True, help="Set an environment variable.")
@click.option("--env-file", "env_files", multiple=True, help="Read environment variables from a file.")
@click.option("-u", "--user", help="user[:group] to run as.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.pass_context
def exec_(ctx, container, command, interactive, tty, detach, env, env_files, user, workdir):
    """Run a command in a running container."""
    from ..container import exec_in, parse_env_file, resolve_env_items
    from ..errors import DockyardError
    from ..runtime.runc import ContainerStartError

    try:
        items = [i for path in env_files for i in parse_env_file(path)] + resolve_env_items(list(env))
        code = exec_in(_root(ctx), container, list(command), env=items, user=user, workdir=workdir,
                       tty=tty, interactive=interactive, detach=detach)
    except ContainerStartError as exc:
        if not exc.shown:
            click.echo(f"dockyard: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except DockyardError as exc:
        click.echo(f"dockyard: error: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


@click.group()
def container():
    """Manage containers."""


@container.command(name="inspect")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Print one field: {{.State.Status}} style paths.")
@click.pass_context
def container_inspect(ctx, containers, fmt):
    """Show low-level information on containers as JSON."""
    from ..container import inspect

    docs = [inspect(_root(ctx), ref) for ref in containers]
    if fmt:
        for doc in docs:
            click.echo(render_format(fmt, doc))
        return
    click.echo(json.dumps(docs, indent=4))


def render_format(fmt: str, doc: dict) -> str:
    """A small subset of Go templates: {{.A.B}} and {{json .A}}."""
    import re

    def field(match: re.Match) -> str:
        as_json, path = match.group(1), match.group(2)
        value: object = doc
        for part in filter(None, path.split(".")):
            value = value.get(part) if isinstance(value, dict) else None
        if as_json:
            return json.dumps(value)
        if value is None:
            return "<no value>"
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)

    return re.sub(r"\{\{\s*(json\s+)?(\.[\w.]*)\s*\}\}", field, fmt)


container.add_command(ps, name="ls")
container.add_command(stop)
container.add_command(kill)
container.add_command(rm)
container.add_command(wait)
container.add_command(logs)
container.add_command(exec_, name="exec")


@click.group()
def volume():
    """Manage volumes."""


@volume.command(name="create")
@click.argument("name", required=False)
@click.option("--label", multiple=True, help="Set a label (K=V).")
@click.pass_context
def volume_create(ctx, name, label):
    """Create a volume (a random name when none is given)."""
    from ..container import VolumeStore

    labels = dict(item.partition("=")[::2] for item in label)
    click.echo(VolumeStore(_root(ctx)).create(name, labels=labels).name)


@volume.command(name="ls")
@click.option("-q", "--quiet", is_flag=True, help="Only show names.")
@click.pass_context
def volume_ls(ctx, quiet):
    """List volumes."""
    from ..container import VolumeStore

    vols = VolumeStore(_root(ctx)).list()
    if quiet:
        for v in vols:
            click.echo(v.name)
        return
    _table([("DRIVER", "VOLUME NAME")] + [("local", v.name) for v in vols])


@volume.command(name="inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def volume_inspect(ctx, names):
    """Show volumes as JSON."""
    from ..container import VolumeStore

    store = VolumeStore(_root(ctx))
    click.echo(json.dumps([store.get(n).info for n in names], indent=4))


@volume.command(name="rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not fail on a missing volume.")
@click.pass_context
def volume_rm(ctx, names, force):
    """Remove volumes (not while a container uses them)."""
    from ..container import VolumeStore

    store = VolumeStore(_root(ctx))
    _each(names, lambda n: store.remove(n, force=force))


@volume.command(name="prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, named ones too.")
@click.option("-f", "--force", is_flag=True, help="Do not ask (dockyard never asks).")
@click.pass_context
def volume_prune(ctx, all_, force):
    """Remove unused anonymous volumes (with -a, every unused volume)."""
    from ..container import VolumeStore

    removed = VolumeStore(_root(ctx)).prune(all_volumes=all_)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
    click.echo(f"Total reclaimed volumes: {len(removed)}")


COMMANDS = [ps, logs, stop, kill, rm, exec_, wait, container, volume]
