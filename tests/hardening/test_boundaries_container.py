"""Container boundaries of RUN, one test each: host files, capabilities,
WORKDIR through /proc/self/fd (runc CVE-2024-21626), leaked descriptors,
mount-stub clean-up through a symlink (BuildKit CVE-2024-23652), chmod and
chown through a symlink while extracting (containerd CVE-2021-32760), and
users resolved from the image, never the host (docker cp CVE-2019-14271).

Host paths aimed at are a sentinel directory in the test's tmp dir; a few
real host files (/etc/passwd...) are only watched, never targeted."""

from __future__ import annotations

import io
import os
import pwd
import tarfile

import pytest
from hardening_lib import (
    SECRET,
    TOOL,
    build,
    busybox_layer,
    check_store_layout,
    docker_archive,
    host_state,
    load_archive,
    make_sentinel,
    tree_state,
    write,
)
from support import needs_root

from dockyard.errors import BuildError, DockyardError
from dockyard.store.fsck import check

pytestmark = needs_root()

# Docker's default capability set as /proc/<pid>/status prints it.
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def outputs(events) -> list[str]:
    return [e.text for e in events.kinds("output")]


def layer_files(store, image, index: int = -1) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with store.blobs.open(image.layer_digests[index]) as f, \
            tarfile.open(fileobj=io.BytesIO(f.read())) as tf:
        return {m.name: (m, tf.extractfile(m).read() if m.isfile() else None) for m in tf}


@pytest.fixture
def victim(tmp_path):
    """The sentinel; checked unchanged (and the host's /etc files) after the test."""
    path = make_sentinel(tmp_path)
    before, host = tree_state(path), host_state()
    yield path
    assert tree_state(path) == before, "the sentinel on the host changed"
    assert host_state() == host, "a host file changed"


def test_run_cannot_read_or_write_host_files_outside_its_mounts(store, base_image, tmp_path, victim):
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    ctx = write(tmp_path / "ctx", {"ctx.txt": "context\n", "Dockerfile": f"""
        FROM busybox:latest
        RUN cat {victim}/secret > /read-direct 2>&1; \\
            cat /proc/1/root{victim}/secret > /read-proc-root 2>&1; \\
            cat /proc/1/cwd{victim}/secret > /read-proc-cwd 2>&1; \\
            mkdir -p {victim} && echo pwned > {victim}/hello; \\
            mknod /tmp/mem c 1 1 && head -c 16 /tmp/mem > /read-mem 2>&1; \\
            mknod /tmp/disk b {major} {minor} && head -c 16 /tmp/disk > /read-disk 2>&1; \\
            mkdir -p /mnt; mount -t tmpfs none /mnt > /mount-tmpfs 2>&1; \\
            mount --bind / /mnt > /mount-bind 2>&1; true
        RUN --mount=type=bind,target=/ctx sh -c 'echo pwned > /ctx/ctx.txt' 2> /ro-bind || true
        RUN --mount=type=bind,target=/ctx,rw sh -c 'echo pwned > /ctx/ctx.txt && cat /ctx/ctx.txt'
    """})
    image, events = build(store, ctx)
    files = {n: d for n, (_, d) in layer_files(store, image, -3).items() if d is not None}
    assert SECRET.encode() not in b"".join(files.values())
    assert files[victim.relative_to("/").as_posix() + "/hello"] == b"pwned\n"  # in the rootfs
    for name in ("read-mem", "read-disk", "mount-tmpfs", "mount-bind"):
        assert b"not permitted" in files[name] or b"denied" in files[name], (name, files[name])
    assert "pwned" in outputs(events)  # the rw bind mount is a throwaway copy
    assert (ctx / "ctx.txt").read_text() == "context\n"
    assert b"Read-only file system" in layer_files(store, image, -2)["ro-bind"][1]


def test_capabilities_are_dockers_default_set(store, base_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": """
        FROM busybox:latest
        RUN grep -E '^(Cap|NoNewPrivs)' /proc/self/status | sed 's/^/root /'
        USER 1000
        RUN grep -E '^Cap' /proc/self/status | sed 's/^/user /'
    """})
    _, events = build(store, ctx)
    seen = dict(line.rsplit(":", 1) for line in outputs(events) if ":" in line)
    seen = {k: v.strip() for k, v in seen.items()}
    assert seen["root CapBnd"] == DOCKER_DEFAULT_CAPS
    assert seen["root CapEff"] == seen["root CapPrm"] == DOCKER_DEFAULT_CAPS
    assert seen["root CapInh"] == seen["root CapAmb"] == "0" * 16
    assert seen["user CapBnd"] == DOCKER_DEFAULT_CAPS
    assert seen["user CapEff"] == seen["user CapPrm"] == "0" * 16


@pytest.mark.parametrize("workdir", ["/proc/self/fd/3", "/proc/self/fd/5", "/proc/self/fd/7",
                                     "/proc/self/fd/9", "/proc/1/cwd", "/sys/fs/cgroup",
                                     "/w", "/w/../w"])
def test_workdir_through_proc_self_fd_never_reaches_the_host(store, base_image, tmp_path, victim,
                                                             workdir):
    """runc CVE-2024-21626: a descriptor to the host that leaks into the
    runtime would become the working directory; the build is refused."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM busybox:latest
        RUN ln -s /proc/self/fd/7 /w
        WORKDIR {workdir}
        RUN echo reached; pwd; ls ../../../ ; echo pwned > ../../../../../../{victim.relative_to('/')}/hello
    """})
    with pytest.raises(DockyardError) as err:
        build(store, ctx)
    assert "\n" not in str(err.value)
    assert "working directory" in str(err.value)


def test_no_descriptor_of_dockyard_reaches_a_container(store, base_image, tmp_path, victim):
    leaked = [os.open(victim, os.O_RDONLY | os.O_DIRECTORY), os.open(victim / "secret", os.O_RDONLY),
              os.open("/", os.O_RDONLY | os.O_DIRECTORY)]
    moved = []
    try:
        for n, fd in enumerate(leaked):
            # far above anything the suite has open, so no leaked fd is clobbered
            moved.append(os.dup2(fd, 1000 + n, inheritable=True))
        ctx = write(tmp_path / "ctx", {"Dockerfile": """
            FROM busybox:latest
            RUN for fd in /proc/self/fd/*; do echo "$fd -> $(readlink $fd)"; done
        """})
        _, events = build(store, ctx)
    finally:
        for fd in leaked + moved:
            os.close(fd)
    lines = [line for line in outputs(events) if " -> " in line]
    fds = {int(line.split()[0].rsplit("/", 1)[1]): line.split(" -> ", 1)[1] for line in lines}
    # 0-2, and the directory the shell's glob had open (gone by the time readlink runs)
    assert set(fds) <= {0, 1, 2, 3}, lines
    assert not any(str(victim) in target or target == "/" for target in fds.values()), lines


def test_mount_stub_cleanup_never_follows_a_symlink_out_of_the_rootfs(store, tmp_path):
    """BuildKit CVE-2024-23652: the step swaps the parents of its mount points
    for symlinks to the host; removing the stubs must not delete there."""
    victim = make_sentinel(tmp_path / "stubs")
    for name in ("hosts", "resolv.conf", "hostname"):
        (victim / name).write_text("")
    (victim / "a" / "b").mkdir(parents=True)
    before = tree_state(victim)
    load_archive(store, docker_archive([busybox_layer()], "tool:latest"))  # no /etc at all
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM tool:latest
        RUN --mount=type=tmpfs,target=/stubs/a/b ["{TOOL}", "sh", "-c", \
"B={TOOL}; $B mv /etc /etc.moved; $B ln -s {victim} /etc; $B mv /stubs /stubs.moved; \
$B ln -s {victim} /stubs; true"]
    """})
    image, _ = build(store, ctx)
    assert tree_state(victim) == before
    members = layer_files(store, image)
    assert members["stubs"][0].issym() or "stubs.moved" in members


def test_extraction_never_chmods_or_chowns_through_a_symlink(store, tmp_path, victim):
    """containerd CVE-2021-32760: a later layer's entries land on names that
    an earlier layer made symlinks to host files and directories."""
    def entry(name, kind, link="", mode=0o777, uid=1234, data=b""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, uid, uid
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        return info, (data if kind == tarfile.REGTYPE else None)

    from hardening_lib import tar_bytes

    planted = tar_bytes([entry("file", tarfile.SYMTYPE, str(victim / "perm400")),
                         entry("dir", tarfile.SYMTYPE, str(victim)),
                         entry("rel", tarfile.SYMTYPE, "../" * 30 + str(victim / "secret")[1:])])
    hostile = tar_bytes([entry("file", tarfile.REGTYPE, data=b"x"), entry("dir", tarfile.DIRTYPE),
                         entry("rel", tarfile.LNKTYPE, "file", mode=0o4777),
                         entry("dir/inner", tarfile.REGTYPE, data=b"y")])
    load_archive(store, docker_archive([busybox_layer(), planted, hostile], "chmod:latest"))
    (tmp_path / "a.txt").write_text("a\n")
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "Dockerfile": f"""
        FROM chmod:latest
        RUN ["{TOOL}", "true"]
        COPY --chmod=777 --chown=1234:1234 a.txt /file
        COPY --chmod=777 --chown=1234:1234 a.txt /dir/
        FROM scratch
        COPY --from=chmod:latest /file /dir /copied/
    """})
    try:
        build(store, ctx)
    except BuildError as exc:
        assert "\n" not in str(exc)
    check_store_layout(store)
    assert check(store).ok


# -- users come from the image ----------------------------------------------------

IMAGE_PASSWD = "root:x:0:0:root:/root:/bin/sh\nimgonly:x:4242:4343:image only:/home/imgonly:/bin/sh\n"
IMAGE_GROUP = "root:x:0:\nimggroup:x:4343:\nimgextra:x:4444:imgonly\n"


def _host_only_user() -> str:
    names = {line.split(":")[0] for line in IMAGE_PASSWD.splitlines()}
    for entry in pwd.getpwall():
        if entry.pw_uid != 0 and entry.pw_name not in names:
            return entry.pw_name
    pytest.skip("the host has no user besides root")


@pytest.fixture
def users_image(store, base_image, tmp_path):
    ctx = write(tmp_path / "users", {"passwd": IMAGE_PASSWD, "group": IMAGE_GROUP, "Dockerfile": """
        FROM busybox:latest
        COPY passwd group /etc/
    """})
    build(store, ctx, tags=["users:latest"])
    assert all(e.pw_name != "imgonly" and e.pw_uid != 4242 for e in pwd.getpwall())
    return ctx


def test_image_users_come_from_the_image(store, users_image, tmp_path):
    ctx = write(tmp_path / "ctx", {"a.txt": "a\n", "Dockerfile": """
        FROM users:latest
        COPY --chown=imgonly:imggroup a.txt /owned
        USER imgonly
        RUN echo "ids $(id -u) $(id -g) $(id -G)" && touch /tmp/made
    """})
    image, events = build(store, ctx)
    assert "ids 4242 4343 4343 4444" in outputs(events)
    owned = layer_files(store, image, -2)["owned"][0]
    assert (owned.uid, owned.gid) == (4242, 4343)
    made = layer_files(store, image)["tmp/made"][0]
    assert (made.uid, made.gid) == (4242, 4343)


def test_host_users_are_unknown_in_an_image(store, users_image, tmp_path):
    name = _host_only_user()
    host_uid = pwd.getpwnam(name).pw_uid
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM users:latest\nUSER {name}\nRUN id\n"})
    with pytest.raises(BuildError, match=f"unable to find user {name}"):
        build(store, ctx)
    write(ctx, {"a.txt": "a\n", "Dockerfile": f"FROM users:latest\nCOPY --chown={name} a.txt /a\n"})
    try:
        image, _ = build(store, ctx)
    except BuildError as exc:
        assert name in str(exc)
    else:  # BuildKit's rule: an unknown --chown name is 0, never the host's id
        info = layer_files(store, image)["a"][0]
        assert host_uid not in (info.uid, info.gid) and (info.uid, info.gid) == (0, 0)


def test_a_passwd_symlink_to_the_host_is_read_inside_the_image(store, base_image, tmp_path):
    victim = make_sentinel(tmp_path / "users")
    (victim / "passwd").write_text("hostevil:x:0:0::/:/bin/sh\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"""
        FROM busybox:latest
        RUN ln -sf {victim}/passwd /etc/passwd
        USER hostevil
        RUN id
    """})
    with pytest.raises(BuildError, match="unable to find user hostevil"):
        build(store, ctx)
