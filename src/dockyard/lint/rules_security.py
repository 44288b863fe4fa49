"""Security and hygiene rules: BuildKit's secrets and .dockerignore checks,
and dockyard's own (root user, unpinned bases, unverified downloads, piped
installers, credentials in the file, package caches left in layers).

The rules about what ships (root user, caches) only look at the final stage
and the stages it is built FROM: a builder stage's leftovers never reach
the image.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

from ..dockerfile import instructions as ins
from ..dockerfile.ignore import PatternMatcher, load_ignore
from ..errors import DockyardError
from ..reference import parse_reference
from .context import LintContext, iter_commands
from .model import ERROR, Finding, rule

_OURS = "dockyard"

# ---- names that look like secrets ------------------------------------------------

_SECRET_WORDS = {"password", "passwd", "pswd", "passphrase", "secret", "secrets", "token", "tokens",
                 "apikey", "accesskey", "privatekey", "credential", "credentials", "auth"}
_KEY_KINDS = {"api", "access", "private", "secret", "ssh", "signing", "encryption", "master", "license"}
# a name for where a secret lives, not the secret itself
_HARMLESS_LAST = {"file", "path", "dir", "url", "name", "type", "id", "length", "env", "header"}


def _name_tokens(name: str) -> list[str]:
    out: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        out += [t.lower() for t in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", part)]
    return out


def secret_like_name(name: str) -> bool:
    tokens = _name_tokens(name)
    if not tokens or "public" in tokens or tokens[-1] in _HARMLESS_LAST:
        return False
    if _SECRET_WORDS.intersection(tokens) or tokens[-1] == "pass":
        return True
    return any(a in _KEY_KINDS and b == "key" for a, b in pairwise(tokens))


@rule("SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands")
def secrets_used_in_arg_or_env(ctx: LintContext) -> Iterator[Finding]:
    commands = [(None, a) for a in ctx.df.meta_args] + list(iter_commands(ctx))
    for _, cmd in commands:
        if isinstance(cmd, ins.ArgCommand):
            names = [n for n, _ in cmd.args]
        elif isinstance(cmd, ins.EnvCommand):
            names = [k for k, _ in cmd.pairs]
        else:
            continue
        for name in names:
            if secret_like_name(name):
                kw = cmd.keyword.upper()
                yield ctx.report("SecretsUsedInArgOrEnv",
                                 f"{kw} {name} looks like a secret: {kw} values are kept in the image "
                                 "history; use RUN --mount=type=secret", ctx.word_span(ctx.node(cmd), name))


# ---- secret-looking values ---------------------------------------------------------

_SECRET_VALUES = [
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Stripe live key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("an npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a password in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@$]+:([^/\s@$]+)@")),
]


def _run_text(cmd: ins.RunCommand) -> str:
    return "\n".join([" ".join(cmd.cmd)] + [h.content for h in cmd.heredocs])


@rule("HardcodedSecret", "Credentials should not be written into the Dockerfile", origin=_OURS)
def hardcoded_secret(ctx: LintContext) -> Iterator[Finding]:
    commands = [(None, a) for a in ctx.df.meta_args] + list(iter_commands(ctx))
    for _, cmd in commands:
        if isinstance(cmd, (ins.EnvCommand, ins.LabelCommand)):
            texts = [v for _, v in cmd.pairs]
        elif isinstance(cmd, ins.ArgCommand):
            texts = [d for _, d in cmd.args if d]
        elif isinstance(cmd, ins.RunCommand):
            texts = [_run_text(cmd)]
        else:
            continue
        for what, rx in _SECRET_VALUES:
            if any(rx.search(t) for t in texts):
                yield ctx.report("HardcodedSecret",
                                 f"{what} is written in the Dockerfile and will stay in the image history; "
                                 "pass it as a build secret instead",
                                 ctx.locate(ctx.node(cmd), rx, group=min(rx.groups, 1)))


# ---- what the image runs as and is built from -------------------------------------


def _is_root(user: str | None) -> bool:
    return user is None or user.split(":", 1)[0] in ("", "root", "0")


@rule("RootUser", "The image should not run as root", origin=_OURS)
def root_user(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.stages:
        return
    final = ctx.stages[-1]
    state = final.end
    if not _is_root(state.user):
        return
    if state.user_line:
        yield ctx.report("RootUser", f"the image runs as root (USER {state.user}); switch to a non-root "
                         "user for the final stage", ctx.keyword_span(state.user_line))
    else:
        yield ctx.report("RootUser", "the image runs as root: add a USER instruction with a non-root user "
                         "to the final stage", ctx.keyword_span(final.node.start_line))


def _base_reference(ctx: LintContext, info):
    if info.base is None or info.parent is not None or info.base.lower() == "scratch":
        return None
    try:
        return parse_reference(info.base, default_tag=None)
    except DockyardError:
        return None


@rule("UntaggedBaseImage", "Base images should name a tag or digest", origin=_OURS)
def untagged_base_image(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        ref = _base_reference(ctx, info)
        if ref is not None and ref.tag is None and ref.digest is None:
            yield ctx.report("UntaggedBaseImage",
                             f"base image '{info.base}' has no tag, so it means whatever 'latest' is "
                             "today; pin a version tag or digest", ctx.word_span(info.node, info.stage.base_name))


@rule("LatestBaseImageTag", "Base images should not use the 'latest' tag", origin=_OURS)
def latest_base_image(ctx: LintContext) -> Iterator[Finding]:
    for info in ctx.stages:
        ref = _base_reference(ctx, info)
        if ref is not None and ref.tag == "latest" and ref.digest is None:
            yield ctx.report("LatestBaseImageTag",
                             f"base image '{info.base}' uses the moving 'latest' tag; pin a version tag "
                             "or digest", ctx.word_span(info.node, info.stage.base_name))


# ---- downloads -------------------------------------------------------------------

_HTTP = re.compile(r"https?://", re.IGNORECASE)
_GIT = re.compile(r"\.git(?:#|$)|^git@")
_PIPE_TO_SHELL = re.compile(
    r"\b(?:curl|wget)\b[^|;&\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+(?:\S+=\S*\s+)*)?"
    r"(?:/usr/bin/|/bin/|/usr/local/bin/)?(?:sh|bash|zsh|dash|ash|ksh|python[0-9.]*|perl|ruby|node)\b")


@rule("AddUrlWithoutChecksum", "ADD of a remote file should pin its --checksum", origin=_OURS)
def add_url_without_checksum(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, ins.AddCommand) and not cmd.checksum:
            for src in cmd.sources:
                if _HTTP.match(src) and not _GIT.search(src):
                    yield ctx.report("AddUrlWithoutChecksum",
                                     f"ADD downloads {src} without verifying it; add --checksum=sha256:...",
                                     ctx.word_span(ctx.node(cmd), src))


@rule("CurlPipeShell", "Downloaded scripts should not be piped into a shell", origin=_OURS)
def curl_pipe_shell(ctx: LintContext) -> Iterator[Finding]:
    for _, cmd in iter_commands(ctx):
        if isinstance(cmd, ins.RunCommand) and _PIPE_TO_SHELL.search(_run_text(cmd)):
            yield ctx.report("CurlPipeShell",
                             "a downloaded script is piped straight into an interpreter; download it, "
                             "verify its checksum, then run it", ctx.locate(ctx.node(cmd), _PIPE_TO_SHELL))


# ---- package caches ----------------------------------------------------------------

_APT_UPDATE = re.compile(r"\bapt(?:-get)?\s+(?:-\S+\s+)*update\b")
_APT_LISTS_REMOVED = re.compile(r"\brm\s[^;&|\n]*/var/lib/apt/lists")
_PIP_INSTALL = re.compile(r"(?<!uv )\bpip[0-9.]*\s+(?:-\S+\s+)*install\b")
_APK_ADD = re.compile(r"\bapk\s+(?:-\S+\s+)*add\b")
_APK_CLEAN = re.compile(r"--no-cache\b|\brm\s[^;&|\n]*/var/cache/apk")


def cache_mounts(cmd: ins.RunCommand) -> list[str]:
    """Targets of the RUN's ``--mount=type=cache`` mounts."""
    targets = []
    for mount in cmd.mounts:
        fields = dict(part.partition("=")[::2] for part in mount.split(","))
        if fields.get("type") == "cache":
            targets.append(fields.get("target") or fields.get("dst") or fields.get("destination") or "")
    return targets


def _covered(targets: list[str], *paths: str) -> bool:
    return any(t and any(p == t or p.startswith(t.rstrip("/") + "/") for p in paths) for t in targets)


@rule("PackageCacheInLayer", "Package manager caches should not be left in image layers", origin=_OURS)
def package_cache_in_layer(ctx: LintContext) -> Iterator[Finding]:
    shipped = {info.index for info in ctx.final_chain()}
    for info, cmd in iter_commands(ctx):
        if info.index not in shipped or not isinstance(cmd, ins.RunCommand):
            continue
        text, mounts = _run_text(cmd), cache_mounts(cmd)
        node = ctx.node(cmd)
        if _APT_UPDATE.search(text) and not _APT_LISTS_REMOVED.search(text) \
                and not _covered(mounts, "/var/lib/apt/lists"):
            yield ctx.report("PackageCacheInLayer", "apt lists stay in the layer: remove /var/lib/apt/lists/* "
                             "in the same RUN or use a cache mount", ctx.locate(node, _APT_UPDATE))
        env = ctx.before[cmd.location.start_line].env
        if _PIP_INSTALL.search(text) and "--no-cache-dir" not in text and "PIP_NO_CACHE_DIR" not in env \
                and not _covered(mounts, "/root/.cache/pip") and not any("/.cache" in t for t in mounts):
            yield ctx.report("PackageCacheInLayer", "pip's download cache stays in the layer: use "
                             "--no-cache-dir or RUN --mount=type=cache,target=/root/.cache/pip",
                             ctx.locate(node, _PIP_INSTALL))
        if _APK_ADD.search(text) and not _APK_CLEAN.search(text) and not _covered(mounts, "/var/cache/apk"):
            yield ctx.report("PackageCacheInLayer", "apk's cache stays in the layer: use 'apk add --no-cache' "
                             "or a cache mount on /var/cache/apk", ctx.locate(node, _APK_ADD))


# ---- .dockerignore -----------------------------------------------------------------


def _ignore_matcher(ctx: LintContext) -> PatternMatcher | None:
    if ctx.context_dir is None:
        return None
    dockerfile = Path(ctx.filename)
    if not dockerfile.is_absolute() and not dockerfile.exists():
        dockerfile = ctx.context_dir / ctx.filename
    return load_ignore(ctx.context_dir, dockerfile)


@rule("CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore", severity=ERROR)
def copy_ignored_file(ctx: LintContext) -> Iterator[Finding]:
    matcher = _ignore_matcher(ctx)
    if matcher is None or not matcher.patterns:
        return
    for _, cmd in iter_commands(ctx):
        if not isinstance(cmd, (ins.CopyCommand, ins.AddCommand)) or getattr(cmd, "from_", None):
            continue
        env = ctx.before[cmd.location.start_line].env
        for src in cmd.sources:
            path = ctx.expand(src, env)
            if path is None or "://" in path or any(c in path for c in "*?["):
                continue
            path = posixpath.normpath("/" + path).lstrip("/")
            if path and matcher.matches(path):
                kw = cmd.keyword.upper()
                yield ctx.report("CopyIgnoredFile", f"{kw} source '{src}' is excluded by .dockerignore, "
                                 "so the build will not find it", ctx.word_span(ctx.node(cmd), src))
