"""`dockyard login / logout / push / pull / manifest inspect`: flags and printing
over ``dockyard.registry``. Register with ``cli.add_command`` for each of
``login``, ``logout``, ``push``, ``pull`` and ``manifest``."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time

import click

from .common import _store

__all__ = ["login", "logout", "manifest", "pull", "push"]

_insecure_option = click.option(
    "--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
    help="Allow plain HTTP or unverified HTTPS for this registry (repeatable).")


def _options(insecure=()):
    from ..registry import load_options

    return load_options(list(insecure))


class _Printer:
    """Docker-like output: one line per layer when it is done, or a live
    view (a progress bar per layer) on a terminal."""

    def __init__(self, out=None, tty: bool | None = None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.lines: dict[str, str] = {}
        self.actions: dict[str, str] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.lock = threading.Lock()

    def echo(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, event) -> None:
        from ..registry import progress as ev

        with self.lock:
            if not event.is_layer:
                if event.action != ev.RESOLVING:
                    self._flush()
                    self.echo(event.text)
                return
            if not self.tty:
                if event.final:
                    self.echo(f"{event.id}: {event.text}")
                return
            changed = self.actions.get(event.id) != event.action
            self.actions[event.id] = event.action
            self.lines[event.id] = _bar(event) if event.total and event.action in (
                ev.DOWNLOADING, ev.PUSHING) else event.text
            now = time.monotonic()
            # a new step always shows; byte counts at most ten times a second
            if changed or now - self.last_draw > 0.1:
                self._draw()
                self.last_draw = now

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for key, text in self.lines.items():
            self.out.write("\x1b[2K" + f"{key}: {text}"[:width] + "\n")
        self.drawn = len(self.lines)
        self.out.flush()

    def _flush(self) -> None:
        if self.tty and self.lines:
            self._draw()
            self.lines.clear()
            self.drawn = 0


def _bar(event, width: int = 40) -> str:
    done = min(width, width * event.current // max(event.total, 1))
    arrow = "=" * max(done - 1, 0) + (">" if done else "")
    return f"{event.text.split(' ')[0]} [{arrow:<{width}}] {event.text.split(' ', 1)[1]}"


@click.command()
@click.argument("server", required=False)
@click.option("-u", "--username", help="User name.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_insecure_option
def login(server, username, password, password_stdin, insecure):
    """Log in to a registry (default Docker Hub) and save the credentials."""
    from ..registry import DockerConfig
    from ..registry import login as do_login
    from ..registry.credentials import server_key

    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise click.UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    options = _options(insecure)
    if not username and not password:
        saved = DockerConfig(options.docker_config).get(server_key(server))
        if saved is not None and saved.username and saved.password:
            click.echo("Authenticating with existing credentials...")
            try:
                do_login(server, saved.username, saved.password, options=options)
                click.echo("Login Succeeded")
                return
            except Exception as e:  # noqa: BLE001 - fall back to asking, as docker does
                click.echo(f"Login did not succeed, error: {e}", err=True)
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    do_login(server, username, password, options=options)
    config = DockerConfig(options.docker_config)
    if not config.helper_for(server_key(server)):
        click.echo(f"WARNING! Your password will be stored unencrypted in {config.path}.", err=True)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server):
    """Log out from a registry (default Docker Hub)."""
    from ..registry import logout as do_logout
    from ..registry.credentials import server_key

    key = server_key(server)
    if do_logout(server):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed digest.")
@_insecure_option
@click.pass_context
def push(ctx, name, quiet, insecure):
    """Push an image to a registry."""
    from ..registry import push as do_push

    digest = do_push(_store(ctx), name, progress=None if quiet else _Printer(),
                     options=_options(insecure))
    if quiet:
        click.echo(digest)


@click.command()
@click.argument("name")
@click.option("--platform", help="Pick this os/arch[/variant] from a multi-platform image.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image reference.")
@_insecure_option
@click.pass_context
def pull(ctx, name, platform, quiet, insecure):
    """Pull an image from a registry."""
    from ..reference import Reference
    from ..registry import pull as do_pull

    ref = Reference.parse(name)
    printer = None if quiet else _Printer()
    if printer is not None:
        what = ref.digest or ref.tag
        printer.echo(f"{what}: Pulling from {ref.path}")
    do_pull(_store(ctx), name, platform=platform, progress=printer, options=_options(insecure))
    click.echo(str(ref))


@click.group()
def manifest():
    """Inspect manifests in a registry."""


@manifest.command("inspect")
@click.argument("name")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP or unverified HTTPS for this registry.")
def inspect(name, insecure):
    """Show the manifest or index NAME points to, as JSON."""
    from ..reference import Reference
    from ..registry import inspect_manifest

    extra = [Reference.parse(name).registry_host] if insecure else []
    click.echo(json.dumps(inspect_manifest(name, options=_options(extra)), indent=4))
