"""`dockyard run`: start a container from an image."""

from __future__ import annotations

import sys

import click


def _env_items(values, env_files) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for path in env_files:
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            raise click.BadParameter(f"{path}: {e.strerror}", param_hint="--env-file")
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                k, sep, v = line.partition("=")
                if sep:
                    out[k] = v
                elif k in os.environ:
                    out[k] = os.environ[k]
    for item in values:
        k, sep, v = item.partition("=")
        if sep:
            out[k] = v
        elif k in os.environ:
            out[k] = os.environ[k]
    return out


@click.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--rm", is_flag=True, help="Remove the container when it exits.")
@click.option("-e", "--env", "env", multiple=True, help="Set an environment variable.")
@click.option("--env-file", "env_files", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="user[:group] to run as (names from the image).")
@click.option("--entrypoint", help="Override the image's ENTRYPOINT.")
@click.option("--hostname", "hostname", help="Container host name.")
@click.option("--network", type=click.Choice(["host", "none"]), default="host")
@click.pass_context
def run(ctx, image, command, rm, env, env_files, workdir, user, entrypoint, hostname, network):
    """Run a command in a new container."""
    from .. import api
    from ..containers import RunOptions, run as run_container
    from .main import _store

    store = _store(ctx)
    img = api.get_image(store, image)
    opts = RunOptions(command=list(command), entrypoint=entrypoint, env=_env_items(env, env_files),
                      workdir=workdir, user=user, hostname=hostname, network=network, rm=True)
    code = run_container(store, img, opts, stdin=None)
    sys.exit(code)
