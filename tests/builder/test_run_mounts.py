"""RUN --mount (bind, cache, tmpfs, secret, ssh), --network and --security."""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import socket
import threading
from pathlib import Path

import pytest
from support import layer_names, needs_root
from test_build import build, run_output, write

from dockyard.builder.mounts import cache_home, parse_mount, prune_cache_mounts
from dockyard.errors import DockerfileError, DockyardError


def cat(store, image, path: str) -> str:
    return run_output(store, image, ["cat", path])


def tops(store, digest) -> set[str]:
    """First path components in a layer."""
    return {n.strip("./").split("/")[0] for n in layer_names(store, digest)} - {""}


# -- parsing (no root needed) ----------------------------------------------------------

def test_parse_defaults_and_aliases():
    m = parse_mount("type=cache,dst=go/pkg", workdir="/src")
    assert (m.type, m.target, m.id, m.sharing, m.mode, m.readonly) == \
        ("cache", "/src/go/pkg", "/src/go/pkg", "shared", 0o755, False)
    m = parse_mount("target=/x,src=sub,from=builder")
    assert (m.type, m.source, m.from_, m.readonly) == ("bind", "sub", "builder", True)
    assert parse_mount("target=/x,rw").readonly is False
    assert parse_mount("type=cache,target=/c,ro,sharing=locked,uid=5,gid=6,mode=0700").readonly is True
    m = parse_mount("type=secret,id=tok")
    assert (m.target, m.mode, m.required, m.env) == ("/run/secrets/tok", 0o400, False, "")
    m = parse_mount("type=secret,id=tok,env=TOKEN,required")
    assert (m.target, m.env, m.required) == ("", "TOKEN", True)
    assert parse_mount("type=secret,target=/etc/key.pem").id == "key.pem"
    m = parse_mount("type=ssh", ssh_index=1)
    assert (m.id, m.target, m.mode) == ("default", "/run/buildkit/ssh_agent.1", 0o600)
    assert parse_mount("type=tmpfs,target=/t,size=64m").size == 64 << 20
    assert parse_mount("type=cache,target=$D", expand=lambda w: w.replace("$D", "/d")).target == "/d"


@pytest.mark.parametrize("value, words", [
    ("type=cache,tragte=/x", "unknown key 'tragte'"),
    ("type=volume,target=/x", "unsupported mount type 'volume'"),
    ("type=cache,target=/x,sharing=sometimes", "'sharing'"),
    ("type=bind,target=/x,sharing=locked", "key 'sharing' is not valid for type=bind"),
    ("type=cache,target=/x,uid=me", "'uid'"),
    ("type=cache,target=/x,mode=999", "'mode'"),
    ("type=tmpfs,target=/x,size=lots", "'size'"),
    ("type=cache", "needs a target"),
    ("type=secret", "needs an id or a target"),
    ("type=cache,target=/x,ro=maybe", "'readonly'"),
    ("type=bind,target=/", "cannot be /"),
])
def test_parse_errors_name_the_key(value, words):
    with pytest.raises(DockerfileError) as e:
        parse_mount(value)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


# -- builds ----------------------------------------------------------------------------

@needs_root()
def test_parse_error_names_the_dockerfile_line(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,tragte=/x true
    """})
    with pytest.raises(DockyardError) as e:
        build(store, ctx)
    msg = str(e.value)
    assert "Dockerfile:2" in msg and "unknown key 'tragte' in --mount" in msg


@needs_root()
def test_cache_mount_persists_never_reaches_a_layer_and_prunes(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,target=/var/cache/app \\
            echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count
        RUN --mount=type=cache,target=/c,uid=1000,gid=50,mode=0750 stat -c '%u %g %a' /c > /owner
    """})
    image, _ = build(store, ctx, tags=["c:1"])
    assert cat(store, image, "/count").strip() == "1"
    assert cat(store, image, "/owner").strip() == "1000 50 750"
    for digest in image.layer_digests[1:]:
        assert not tops(store, digest) & {"var", "c"}
    home = cache_home(store, "/var/cache/app")
    assert (home / "data" / "log").read_text() == "run\n"
    image, events = build(store, ctx, tags=["c:1"], no_cache=True)
    assert cat(store, image, "/count").strip() == "2"
    # cached: the mount's contents are not part of the key
    image, events = build(store, ctx, tags=["c:1"])
    assert len(events.kinds("cached")) == 2
    assert prune_cache_mounts(store) == 2
    assert not (home / "data").exists()
    image, _ = build(store, ctx, tags=["c:1"], no_cache=True)
    assert cat(store, image, "/count").strip() == "1"


@needs_root()
def test_cache_mount_existing_target_and_ro_and_from(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest AS seed
        RUN mkdir -p /data && echo seeded > /data/s
        FROM busybox:latest
        RUN --mount=type=cache,target=/tmp,id=t echo x > /tmp/f
        RUN --mount=type=cache,target=/s,from=seed,source=/data cat /s/s > /seen
        RUN --mount=type=cache,target=/r,id=t,ro sh -c 'cat /r/f > /ro; touch /r/new 2>/dev/null && echo rw >> /ro || true'
    """})
    image, _ = build(store, ctx)
    assert cat(store, image, "/seen") == "seeded\n"
    assert cat(store, image, "/ro") == "x\n"
    # /tmp existed: not in the layer ('etc' is the runtime's /etc/hosts parent, see do_run)
    assert tops(store, image.layer_digests[1]) - {"etc"} == set()


@needs_root()
def test_cache_mount_locked_waits_for_the_lock(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,target=/c,sharing=locked echo locked > /c/f
    """})
    home = cache_home(store, "/c")
    home.mkdir(parents=True)
    fd = os.open(home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = threading.Event()
    errors = []

    def go():
        try:
            build(store, ctx)
        except DockyardError as e:  # reported below
            errors.append(e)
        done.set()

    t = threading.Thread(target=go)
    t.start()
    try:
        assert not done.wait(2.0), "a locked cache mount must wait for the holder"
        assert not (home / "data" / "f").exists()
    finally:
        os.close(fd)
    t.join(60)
    assert done.is_set() and not errors, errors
    assert (home / "data" / "f").read_text() == "locked\n"


@needs_root()
def test_cache_mount_private_gets_a_copy_when_busy(store, base_image, tmp_path):
    seed = write(tmp_path / "seed", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,target=/c echo a > /c/a
    """})
    build(store, seed)
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,target=/c,sharing=private sh -c 'cat /c/a > /out; echo b > /c/b'
    """})
    home = cache_home(store, "/c")
    fd = os.open(home / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        image, _ = build(store, ctx)   # must not block
    finally:
        os.close(fd)
    assert cat(store, image, "/out") == "a\n"
    assert sorted(os.listdir(home / "data")) == ["a"]      # the copy was thrown away
    assert not [p for p in os.listdir(home) if p.startswith("private-")]
    build(store, ctx, no_cache=True)                         # not busy: the cache itself
    assert sorted(os.listdir(home / "data")) == ["a", "b"]


@needs_root()
def test_bind_from_context_keys_on_content(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": """
            FROM busybox:latest
            RUN --mount=target=/src cat /src/conf/a.txt > /out && ls /src > /listing
            RUN --mount=type=bind,source=conf,target=/conf,rw sh -c 'echo junk > /conf/new; ls /conf > /rw'
            RUN --mount=target=/src sh -c 'touch /src/x 2>/dev/null && echo writable > /ro || echo readonly > /ro'
        """,
        "conf/a.txt": "one\n",
        "secret.key": "ignored\n",
        ".dockerignore": "secret.key\n",
    })
    image, _ = build(store, ctx)
    assert cat(store, image, "/out") == "one\n"
    assert "secret.key" not in cat(store, image, "/listing").split()
    assert cat(store, image, "/rw").split() == ["a.txt", "new"]
    assert cat(store, image, "/ro") == "readonly\n"
    assert not (ctx / "conf" / "new").exists() and not (ctx / "x").exists()
    for digest in image.layer_digests[1:]:
        assert not tops(store, digest) & {"src", "conf"}
    os.utime(ctx / "conf" / "a.txt")
    _, events = build(store, ctx)
    assert len(events.kinds("cached")) == 3
    (ctx / "conf" / "a.txt").write_text("two\n")
    image, events = build(store, ctx)
    assert len(events.kinds("cached")) == 0
    assert cat(store, image, "/out") == "two\n"


@needs_root()
def test_bind_from_stage_and_image(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest AS tools
        ARG V=from-stage
        RUN echo $V > /made
        FROM busybox:latest AS unused-otherwise
        RUN echo on-demand > /lazy
        FROM busybox:latest
        RUN --mount=from=tools,source=/made,target=/m cat /m > /out
        RUN --mount=from=unused-otherwise,target=/u,rw sh -c 'cat /u/lazy >> /out; rm /u/lazy'
        RUN --mount=from=busybox:latest,source=/etc,target=/e grep -c root /e/passwd >> /out
    """})
    image, _ = build(store, ctx)
    assert cat(store, image, "/out") == "from-stage\non-demand\n1\n"
    # the key holds the source stage's chain id: a changed stage re-runs the RUN
    image, events = build(store, ctx, build_args={"V": "changed"})
    assert cat(store, image, "/out") == "changed\non-demand\n1\n"
    assert len(events.kinds("cached")) == 1     # only the on-demand stage's RUN


@needs_root()
def test_mount_spec_is_in_the_cache_key(store, base_image, tmp_path):
    df = """
        FROM busybox:latest
        RUN --mount=type=cache,target=/c,id=ID echo hi > /out
    """
    ctx = write(tmp_path / "ctx", {"Dockerfile": df.replace("ID", "one")})
    build(store, ctx)
    _, events = build(store, ctx)
    assert len(events.kinds("cached")) == 1
    write(ctx, {"Dockerfile": df.replace("ID", "two")})
    _, events = build(store, ctx)
    assert events.kinds("cached") == []
    assert any("mounts" in e.text for e in events.kinds("miss"))


@needs_root()
def test_tmpfs_mount(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=tmpfs,target=/scratch,size=1m \\
            sh -c 'grep " /scratch " /proc/mounts | cut -d" " -f3 > /fs; echo x > /scratch/f'
    """})
    image, _ = build(store, ctx)
    assert cat(store, image, "/fs") == "tmpfs\n"
    assert tops(store, image.layer_digests[-1]) - {"etc"} == {"fs"}


@needs_root()
def test_secret_never_leaks(store, base_image, tmp_path):
    token = "tok-" + secrets.token_hex(16)
    src = tmp_path / "token.txt"
    src.write_text(token)
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d" " -f1 > /file-hash
        RUN --mount=type=secret,id=tok,env=TOKEN,target=/etc/tok,uid=1000,mode=0440 \\
            sh -c 'printf %s "$TOKEN" | sha256sum | cut -d" " -f1 > /env-hash; stat -c "%u %a" /etc/tok > /perm'
        RUN --mount=type=secret,id=absent sh -c 'test ! -e /run/secrets/absent && echo none > /absent'
        RUN sh -c 'test -e /run && echo run-exists; test -e /etc/tok && echo tok-exists; true' > /after
    """})
    image, events = build(store, ctx, tags=["s:1"], secrets={"tok": {"src": str(src)}})
    want = hashlib.sha256(token.encode()).hexdigest()
    assert cat(store, image, "/file-hash").strip() == want
    assert cat(store, image, "/env-hash").strip() == want
    assert cat(store, image, "/perm").strip() == "1000 440"
    assert cat(store, image, "/absent") == "none\n"
    assert cat(store, image, "/after") == ""
    for digest in image.layer_digests[1:4]:
        assert "run" not in tops(store, digest)
    # a new value of the secret does not change the cache key
    src.write_text(token + "-changed")
    _, again = build(store, ctx, tags=["s:1"], secrets={"tok": {"src": str(src)}})
    assert len(again.kinds("cached")) == 4
    src.write_text("x")
    leaks = []
    for dirpath, _, files in os.walk(store.root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and token.encode() in path.read_bytes():
                leaks.append(str(path))
    assert leaks == []
    for ev in [*events, *again]:
        assert token not in repr(ev)
    assert token not in repr(image.config)


@needs_root()
def test_secret_required_and_from_env(store, base_image, tmp_path, monkeypatch):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=secret,id=api,required=true cp /run/secrets/api /copied
    """})
    with pytest.raises(DockyardError) as e:
        build(store, ctx)
    assert "secret api not found" in str(e.value) and "Dockerfile:2" in str(e.value)
    monkeypatch.setenv("DOCKYARD_TEST_API", "from-env")
    image, _ = build(store, ctx, secrets={"api": {"env": "DOCKYARD_TEST_API"}})
    assert cat(store, image, "/copied") == "from-env"   # copied on purpose by the RUN


@needs_root()
def test_ssh_socket_forwarded(store, base_image, tmp_path):
    sock_path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    try:
        ctx = write(tmp_path / "ctx", {"Dockerfile": """
            FROM busybox:latest
            RUN --mount=type=ssh sh -c 'echo $SSH_AUTH_SOCK > /out; test -S "$SSH_AUTH_SOCK" && echo socket >> /out'
            RUN --mount=type=ssh,id=other,target=/agent,required sh -c 'test -S /agent && echo $SSH_AUTH_SOCK >> /out'
        """})
        with pytest.raises(DockyardError) as e:
            build(store, ctx, ssh={"default": str(sock_path)})
        assert "other" in str(e.value)
        image, _ = build(store, ctx, ssh={"default": str(sock_path), "other": str(sock_path)})
        assert cat(store, image, "/out") == "/run/buildkit/ssh_agent.0\nsocket\n/agent\n"
        assert tops(store, image.layer_digests[-1]) - {"etc"} == {"out"}
    finally:
        server.close()


@needs_root()
def test_network_modes(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --network=none sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " > /none'
        RUN --network=default sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " > /default'
        RUN --network=host sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " > /host'
    """})
    image, _ = build(store, ctx)
    mine = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    host = sorted(cat(store, image, "/host").split())
    assert cat(store, image, "/none").split() == ["lo"]
    # the host's interfaces (other containers on this host may add or drop some meanwhile)
    assert "lo" in host and set(host) & (set(mine) - {"lo"})
    assert sorted(cat(store, image, "/default").split()) == host   # the build's network: host
    image, _ = build(store, ctx, network="none", no_cache=True)
    assert cat(store, image, "/default").split() == ["lo"]


@needs_root()
def test_security_insecure_needs_the_entitlement(store, base_image, tmp_path):
    from dockyard.runtime.spec import (
        DEFAULT_CAPABILITIES,
        capability_mask,
        host_capabilities,
    )

    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --security=insecure grep CapEff /proc/self/status > /insecure
        RUN --security=sandbox grep CapEff /proc/self/status > /sandbox
    """})
    with pytest.raises(DockyardError) as e:
        build(store, ctx)
    assert "--security=insecure" in str(e.value) and "security.insecure" in str(e.value)
    assert "Dockerfile:2" in str(e.value)
    image, _ = build(store, ctx, allow=["security.insecure"])
    insecure = int(cat(store, image, "/insecure").split()[1], 16)
    sandbox = int(cat(store, image, "/sandbox").split()[1], 16)
    assert insecure == capability_mask(host_capabilities())
    assert sandbox == capability_mask(set(DEFAULT_CAPABILITIES) & host_capabilities())
    # a cached insecure step still needs the entitlement
    with pytest.raises(DockyardError):
        build(store, ctx)


@needs_root()
def test_sandbox_runs_under_seccomp_and_insecure_lifts_the_sandbox(store, base_image, tmp_path):
    from dockyard.container.security import DEFAULT_SECCOMP_PATHS

    if not any(os.path.exists(p) for p in DEFAULT_SECCOMP_PATHS):
        pytest.skip("no default seccomp profile on this host (containers-common)")
    probe = ("grep Seccomp: /proc/self/status | tr -d ' \\t'; "
             "grep -c ' /proc/' /proc/mounts; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "
             "test -c /dev/fuse && echo fuse || echo nofuse")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM busybox:latest
        RUN sh -c "{probe}" > /sandbox
        RUN --security=insecure sh -c "{probe}" > /insecure
    """})
    image, _ = build(store, ctx, allow=["security.insecure"])
    sandbox = cat(store, image, "/sandbox").split()
    insecure = cat(store, image, "/insecure").split()
    # Seccomp mode 2: a filter is installed; masked and read-only paths under /proc
    # are mounts of their own; /sys is read-only
    assert sandbox[0] == "Seccomp:2" and int(sandbox[1]) > 0 and sandbox[2:] == ["ro", "nofuse"]
    fuse = "fuse" if os.path.exists("/dev/fuse") else "nofuse"
    assert insecure == ["Seccomp:0", "0", "rw", fuse]


@needs_root()
def test_prune_skips_a_cache_in_use(store, base_image, tmp_path):
    write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN --mount=type=cache,target=/c,id=busy echo x > /c/f
    """})
    build(store, tmp_path / "ctx")
    home = cache_home(store, "busy")
    fd = os.open(home / "use.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        assert prune_cache_mounts(store) == 0
        assert (home / "data" / "f").exists()
    finally:
        os.close(fd)
    assert prune_cache_mounts(store) == 1
    assert prune_cache_mounts(store) == 0
