"""The `dockyard` command: flag parsing and printing over dockyard.api."""

from __future__ import annotations

import json
import os
import sys

import click

from .. import __version__
from ..errors import DockyardError
from .common import _store


def _kv(values, flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid value {item!r}: expected KEY=VALUE", param_hint=flag)
        if not sep:
            env = os.environ.get(key)
            if env is None:
                continue
            value = env
        out[key] = value
    return out


def _secrets(values) -> dict[str, dict[str, str]]:
    """--secret id=NAME,src=FILE | id=NAME,env=VAR (type=file|env optional)."""
    out: dict[str, dict[str, str]] = {}
    for value in values:
        fields = dict(part.partition("=")[::2] for part in value.split(",") if part)
        sid = fields.get("id")
        if not sid:
            raise click.BadParameter(f"{value!r}: missing id=", param_hint="--secret")
        src = fields.get("src") or fields.get("source")
        env = fields.get("env")
        if fields.get("type") == "env" and not env:
            env = src or sid
            src = None
        if src:
            out[sid] = {"src": src}
        elif env:
            out[sid] = {"env": env}
        elif os.environ.get(sid) is not None:
            out[sid] = {"env": sid}
        else:
            raise click.BadParameter(f"{value!r}: give src=FILE or env=VAR", param_hint="--secret")
    return out


def _ssh(values) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        sid, _, sock = value.partition("=")
        sock = sock or os.environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise click.BadParameter(f"{value!r}: no socket given and SSH_AUTH_SOCK is not set",
                                     param_hint="--ssh")
        out[sid or "default"] = sock
    return out


class Group(click.Group):
    _listing = False

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in _LAZY:
            if self._listing:  # --help reads only the summary: no need to import the module
                return click.Command(name, help=_LAZY_HELP[name])
            command = _lazy_command(name)
        return command

    def format_commands(self, ctx, formatter):
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DockyardError as e:
            click.echo(f"dockyard: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("dockyard: interrupted", err=True)
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dockyard")
@click.option("--root", envvar="DOCKYARD_ROOT", help="Store directory (default /var/lib/dockyard, or $XDG_DATA_HOME/dockyard when not root).")
@click.pass_context
def cli(ctx, root):
    """Build, run and ship container images without a daemon."""
    ctx.ensure_object(dict)["root"] = root
    if os.geteuid() != 0 and ctx.invoked_subcommand not in _NO_NAMESPACE and "--help" not in sys.argv:
        from .. import rootless

        rootless.ensure()   # not root: continue as uid 0 of a user namespace


@cli.command()
@click.argument("path")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag).")
@click.option("-f", "--file", "dockerfile", help="Path of the Dockerfile (default PATH/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set a build-time variable.")
@click.option("--target", help="Build this stage and stop.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--label", "labels", multiple=True, help="Set metadata on the image.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "quiet"]), default="auto")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--iidfile", help="Write the image id to this file.")
@click.option("--network", type=click.Choice(["default", "host", "none"]), default="default",
              help="Network for RUN instructions.")
@click.option("--secret", "secrets", multiple=True, help="Secret for RUN --mount=type=secret: id=NAME,src=FILE|env=VAR.")
@click.option("--ssh", "ssh", multiple=True, help="SSH agent for RUN --mount=type=ssh: default|ID[=SOCKET].")
@click.option("--allow", "allow", multiple=True, help="Allow an entitlement, e.g. security.insecure.")
@click.option("-o", "--output", "outputs", multiple=True,
              help="Export: type=local,dest=DIR | type=tar|oci|docker,dest=FILE | type=registry.")
@click.option("--push", is_flag=True, help="Push the image after the build (= --output type=registry).")
@click.option("--metadata-file", help="Write the build result's digests to this JSON file.")
@click.option("--annotation", "annotations", multiple=True, help="Add a manifest annotation KEY=VALUE.")
@click.option("--rewrite-timestamp", is_flag=True, help="Clamp file times in new layers to SOURCE_DATE_EPOCH.")
@click.option("--platform", "platforms", multiple=True,
              help="Target platform(s), e.g. linux/arm64 or linux/amd64,linux/arm64 (an index).")
@click.option("--check", is_flag=True, help="Only run the build checks (dockyard lint) and report.")
@click.option("--pull", is_flag=True, help="Always fetch base images from their registry.")
@click.option("--sbom", type=click.Choice(["true", "spdx-json", "cyclonedx-json"]),
              help="Attach an SBOM to the pushed image (needs --push).")
@click.option("--cache-to", "cache_to", multiple=True,
              help="Export the build cache: type=registry,ref=REF[,mode=max] | type=local,dest=DIR.")
@click.option("--cache-from", "cache_from", multiple=True,
              help="Use a shared build cache: type=registry,ref=REF | type=local,src=DIR | REF.")
@click.pass_context
def build(ctx, path, tags, dockerfile, build_args, target, no_cache, labels, progress, quiet, iidfile,
          network, secrets, ssh, allow, outputs, push, metadata_file, annotations, rewrite_timestamp,
          platforms, check, pull, sbom, cache_to, cache_from):
    """Build an image from a Dockerfile."""
    from .. import api
    from ..builder.outputs import parse_annotations
    from ..builder.progress import PlainPrinter, TtyPrinter, null_listener

    if check or not quiet:
        if _build_checks(ctx, path, dockerfile, build_args, report_only=check) or check:
            return
    if quiet:
        progress = "quiet"
    if progress == "auto":
        progress = "tty" if sys.stderr.isatty() else "plain"
    printer = {"plain": PlainPrinter, "tty": TtyPrinter}.get(progress)
    listener = printer() if printer else null_listener
    image = api.build(path, dockerfile=dockerfile, tags=tags, build_args=_kv(build_args, "--build-arg"),
                      target=target, no_cache=no_cache, labels=_kv(labels, "--label"),
                      progress=listener, network="host" if network == "default" else network,
                      secrets=_secrets(secrets), ssh=_ssh(ssh), allow=allow, outputs=outputs,
                      push=push, metadata_file=metadata_file,
                      annotations=parse_annotations(annotations), rewrite_timestamp=rewrite_timestamp,
                      platforms=platforms, pull=pull, sbom=sbom, cache_to=cache_to,
                      cache_from=cache_from, store=_store(ctx))
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image.id)
    if quiet:
        click.echo(image.id)
    else:
        click.echo(f"writing image {image.id} done", err=True)
        for t in image.tags:
            if t in [api.normalize(x) for x in tags]:
                click.echo(f"naming to {t} done", err=True)


def _build_checks(ctx, path, dockerfile, build_args, report_only: bool) -> bool:
    """BuildKit's behaviour: checks warn during a build, fail it when the
    Dockerfile says `# check=error=true`, and `--check` only reports."""
    from pathlib import Path

    from .. import lint
    from ..errors import BuildError

    df = Path(dockerfile) if dockerfile else Path(path) / "Dockerfile"
    if dockerfile and not df.is_absolute() and not df.exists():
        df = Path(path) / dockerfile
    try:
        text = df.read_bytes()
    except OSError:
        return False          # the build itself reports the missing file
    check_arg = _kv(build_args, "--build-arg").get("BUILDKIT_DOCKERFILE_CHECK")
    try:
        cfg = lint.config(text, check_arg=check_arg)
        findings = lint.check(text, filename=df.name, context_dir=Path(path), check_arg=check_arg,
                              image_config=lint.store_image_config(_store(ctx)))
    except DockyardError:
        if report_only:
            raise
        return False          # the build reports parse errors with more context
    if findings:
        click.echo(lint.format_text(findings), err=True)
    failed = lint.exit_code(findings, cfg.error or report_only) != 0
    if report_only:
        if failed:
            sys.exit(1)
        return True
    if failed and cfg.error:
        raise BuildError(f"{df.name}: build checks failed: "
                         + ", ".join(sorted({f.rule for f in findings})))
    return False


@cli.command()
@click.option("-q", "--quiet", is_flag=True, help="Only show image ids.")
@click.pass_context
def images(ctx, quiet):
    """List images."""
    from .. import api

    rows = []
    for image in api.images(_store(ctx)):
        short = image.id[7:19]
        if quiet:
            rows.append(short)
            continue
        names = image.tags or ["<none>:<none>"]
        for name in names:
            repo, tag = _split_tag(api.familiar(name) if name != "<none>:<none>" else name)
            rows.append((repo, tag, short, api.age(image.config.get("created", "")), _size(image.size)))
    if quiet:
        click.echo("\n".join(dict.fromkeys(rows)))
        return
    header = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        click.echo("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


def _split_tag(name: str) -> tuple[str, str]:
    if "@" in name:
        return name.split("@", 1)[0], "<none>"
    repo, _, tag = name.rpartition(":")
    if "/" in tag or not repo:
        return name, "<none>"
    return repo, tag


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return str(n)


@cli.command()
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag(ctx, source, target):
    """Create a tag TARGET that refers to SOURCE."""
    from .. import api

    api.tag(source, target, store=_store(ctx))


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True)
@click.pass_context
def rmi(ctx, names, force):
    """Remove images."""
    from .. import api

    for line in api.rmi(names, force=force, store=_store(ctx)):
        click.echo(line)


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Not supported yet; output is JSON.")
@click.pass_context
def inspect(ctx, names, fmt):
    """Show low-level information on images as JSON."""
    from .. import api

    click.echo(json.dumps([api.inspect(n, store=_store(ctx)) for n in names], indent=4))


@cli.command()
@click.argument("name")
@click.option("--no-trunc", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def history(ctx, name, no_trunc, quiet):
    """Show the history of an image."""
    from .. import api

    rows = api.history(name, store=_store(ctx))
    if quiet:
        return
    click.echo(f"{'CREATED':<24}  {'CREATED BY':<60}  {'SIZE':>8}  COMMENT")
    for r in rows:
        by = r["created_by"]
        if not no_trunc and len(by) > 60:
            by = by[:57] + "..."
        click.echo(f"{api.age(r['created']):<24}  {by:<60}  {_size(r['size']):>8}  {r['comment']}")


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Write to this file.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker")
@click.pass_context
def save(ctx, names, output, fmt):
    """Save images to a tar archive (docker load or OCI layout)."""
    from .. import api

    api.save(names, output, format=fmt, store=_store(ctx))


@cli.command()
@click.option("-i", "--input", "source", help="Read from this file instead of stdin.")
@click.option("-q", "--quiet", is_flag=True)
@click.pass_context
def load(ctx, source, quiet):
    """Load images from a docker-archive or OCI layout tar."""
    from .. import api

    results = api.load(source or sys.stdin.buffer, store=_store(ctx))
    for image_id, tags in results:
        if tags:
            for t in tags:
                click.echo(f"Loaded image: {api.familiar(t)}")
        else:
            click.echo(f"Loaded image ID: {image_id}")


@cli.command(name="import")
@click.argument("file")
@click.argument("name", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.pass_context
def import_(ctx, file, name, changes, message):
    """Create an image from a root filesystem tarball."""
    from .. import api

    source = sys.stdin.buffer if file == "-" else file
    image = api.import_image(source, name, changes=changes, message=message, store=_store(ctx))
    click.echo(image.id)


@cli.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Also drop the whole build cache.")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.option("--cache-mounts", is_flag=True, help="Also empty RUN --mount=type=cache directories.")
@click.pass_context
def prune(ctx, all_, force, cache_mounts):
    """Remove unused blobs, snapshots and (with -a) the build cache."""
    from .. import api

    store = _store(ctx)
    if cache_mounts:
        from ..builder.mounts import prune_cache_mounts

        click.echo(f"Cleared {prune_cache_mounts(store)} cache mounts")
    count, freed = api.prune(all_cache=all_, store=store)
    click.echo(f"Deleted {count} blobs; total reclaimed space: {_size(freed)}")


# Commands that only read the store's metadata or talk to a registry: no
# user namespace needed when not root.
_NO_NAMESPACE = {"images", "inspect", "history", "tag", "login", "logout", "lint", "init",
                 "manifest"}

# Commands that live in other modules, imported only when used (or listed in
# --help), so `dockyard build` does not pay for the registry client or `run`.
_LAZY = {
    "run": "run:run",
    "ps": "container_cmds:ps", "logs": "container_cmds:logs", "stop": "container_cmds:stop",
    "kill": "container_cmds:kill", "rm": "container_cmds:rm", "exec": "container_cmds:exec_",
    "wait": "container_cmds:wait", "container": "container_cmds:container",
    "volume": "container_cmds:volume",
    "fsck": "fsck_cmd:fsck",
    "layers": "inspect_cmds:layers", "diff": "inspect_cmds:diff", "sbom": "inspect_cmds:sbom",
    "lint": "lint_cmds:lint", "init": "lint_cmds:init",
    "login": "registry_cmds:login", "logout": "registry_cmds:logout", "push": "registry_cmds:push",
    "pull": "registry_cmds:pull", "manifest": "registry_cmds:manifest",
}


# Their summaries for `dockyard --help` (a test keeps them equal to the commands' own).
_LAZY_HELP = {
    "run": "Run a command in a new container.",
    "ps": "List containers.",
    "logs": "Show a container's output (kept unless it ran with --rm).",
    "stop": "Stop running containers (STOPSIGNAL, then SIGKILL after a timeout).",
    "kill": "Send a signal to running containers.",
    "rm": "Remove containers.",
    "exec": "Run a command in a running container.",
    "wait": "Block until containers stop, then print their exit codes.",
    "container": "Manage containers.",
    "volume": "Manage volumes.",
    "fsck": "Verify the store: every blob digest, every image reference, every snapshot.",
    "layers": "Show each layer's size, instruction, changes and wasted space.",
    "diff": "Show the files, sizes, config and packages that differ between two images.",
    "sbom": "Write a software bill of materials of the packages found in an image.",
    "lint": "Check a Dockerfile against BuildKit's build checks and security rules.",
    "init": "Write a best-practice Dockerfile and .dockerignore for DIRECTORY.",
    "login": "Log in to a registry (default Docker Hub) and save the credentials.",
    "logout": "Log out from a registry (default Docker Hub).",
    "push": "Push an image to a registry.",
    "pull": "Pull an image from a registry.",
    "manifest": "Inspect manifests in a registry.",
}


def _lazy_command(name: str):
    import importlib

    module, _, attr = _LAZY[name].partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


def main() -> None:
    cli(prog_name="dockyard")


if __name__ == "__main__":
    main()
