"""Flag parsing and Docker's process rules, without running anything."""

from __future__ import annotations

import signal

import pytest

from dockyard.container import (
    InvalidOption,
    MountSpec,
    PortSpec,
    RunOptions,
    parse_env_file,
    parse_mount,
    parse_publish,
    parse_security_opts,
    parse_tmpfs,
    parse_volume,
    resolve_env_items,
)
from dockyard.container.process import (
    container_env,
    entrypoint_and_cmd,
    healthcheck,
    merged_env,
    parse_signal,
    working_dir,
)
from dockyard.container.security import capabilities, seccomp_for
from dockyard.runtime.spec import DEFAULT_CAPABILITIES


@pytest.mark.parametrize("raw, expected", [
    ("/data", MountSpec("volume", "/data")),
    ("vol:/data", MountSpec("volume", "/data", "vol")),
    ("vol:/data:ro", MountSpec("volume", "/data", "vol", readonly=True)),
    ("vol:/data:ro,nocopy", MountSpec("volume", "/data", "vol", readonly=True, nocopy=True)),
    ("/host:/ctr", MountSpec("bind", "/ctr", "/host", create_source=True)),
    ("/host:/ctr:ro,rshared", MountSpec("bind", "/ctr", "/host", readonly=True, propagation="rshared",
                                        create_source=True)),
    ("/host/../x:/ctr/./y/:z", MountSpec("bind", "/ctr/y", "/x", create_source=True)),
])
def test_volume_specs(raw, expected):
    assert parse_volume(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ("/data:ro", "invalid volume specification"),
    ("vol:relative", "invalid volume specification"),
    ("vol:/", "destination can't be '/'"),
    ("bad name!:/x", "invalid characters for a local volume name"),
    ("a:/b:c:d", "invalid volume specification"),
    ("vol:/x:rx", "invalid mode: rx"),
])
def test_bad_volume_specs(raw, message):
    with pytest.raises(InvalidOption, match=message):
        parse_volume(raw)


def test_mount_specs():
    assert parse_mount("type=bind,source=/h,target=/c,readonly") == \
        MountSpec("bind", "/c", "/h", readonly=True)
    assert parse_mount("type=bind,src=/h,dst=/c,ro=false,bind-propagation=rslave") == \
        MountSpec("bind", "/c", "/h", propagation="rslave")
    assert parse_mount("type=volume,source=vv,target=/c,volume-nocopy") == \
        MountSpec("volume", "/c", "vv", nocopy=True)
    assert parse_mount("target=/anon") == MountSpec("volume", "/anon")
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=1048576,tmpfs-mode=1770") == \
        MountSpec("tmpfs", "/t", options=("size=1048576", "mode=1770"))
    assert parse_mount('type=bind,source=/h,"target=/a,b"').target == "/a,b"


@pytest.mark.parametrize("raw, message", [
    ("type=bind,target=/c", "source is required"),
    ("type=tmpfs,source=x,target=/c", "source must not be specified"),
    ("type=npipe,target=/c", "invalid mount type"),
    ("type=bind,source=/h,target=/c,volume-nocopy", "unexpected key 'volume-nocopy'"),
    ("type=volume,source=vv", "target is required"),
])
def test_bad_mount_specs(raw, message):
    with pytest.raises(InvalidOption, match=message):
        parse_mount(raw)


def test_tmpfs_specs():
    assert parse_tmpfs("/run") == MountSpec("tmpfs", "/run")
    assert parse_tmpfs("/run:rw,size=64m,exec") == MountSpec("tmpfs", "/run", options=("size=64m", "exec"))
    assert parse_tmpfs("/ro:ro").readonly


@pytest.mark.parametrize("raw, expected", [
    ("80", [PortSpec(80)]),
    ("8080:80", [PortSpec(80, "tcp", 8080)]),
    ("127.0.0.1:8080:80/udp", [PortSpec(80, "udp", 8080, "127.0.0.1")]),
    ("127.0.0.1::80", [PortSpec(80, "tcp", 0, "127.0.0.1")]),
    ("[::1]:8080:80", [PortSpec(80, "tcp", 8080, "::1")]),
    ("8000-8001:80-81", [PortSpec(80, "tcp", 8000), PortSpec(81, "tcp", 8001)]),
])
def test_publish_specs(raw, expected):
    assert parse_publish(raw) == expected


@pytest.mark.parametrize("raw", ["x", "0", "70000", "80/sctp", "8000-8002:80-81", "1:2:3:4"])
def test_bad_publish_specs(raw):
    with pytest.raises(InvalidOption):
        parse_publish(raw)


def test_security_opts():
    assert parse_security_opts([]) == (False, None)
    assert parse_security_opts(["no-new-privileges"]) == (True, None)
    assert parse_security_opts(["no-new-privileges:true", "seccomp=unconfined"]) == (True, "unconfined")
    assert parse_security_opts(["no-new-privileges=false", "seccomp=/p.json"]) == (False, "/p.json")
    with pytest.raises(InvalidOption):
        parse_security_opts(["bogus=1"])


def test_env_items_and_env_file(tmp_path):
    environ = {"FROM_HOST": "h"}
    assert resolve_env_items(["A=1", "FROM_HOST", "MISSING", "B="], environ) == ["A=1", "FROM_HOST=h", "B="]
    path = tmp_path / "env"
    path.write_text("# comment\n\nA=1 2\n  B='quoted'\nFROM_HOST\nMISSING\nC=x=y\n")
    assert parse_env_file(path, environ) == ["A=1 2", "B='quoted'", "FROM_HOST=h", "C=x=y"]
    path.write_text("BAD KEY=1\n")
    with pytest.raises(InvalidOption, match="whitespaces"):
        parse_env_file(path, environ)
    with pytest.raises(InvalidOption, match="open"):
        parse_env_file(tmp_path / "missing", environ)


def _image(**cfg):
    return {"config": cfg}


def test_entrypoint_and_cmd_rules():
    img = _image(Entrypoint=["/ep", "a"], Cmd=["c1", "c2"])
    assert entrypoint_and_cmd(img, [], None) == (["/ep", "a"], ["c1", "c2"])
    assert entrypoint_and_cmd(img, ["x"], None) == (["/ep", "a"], ["x"])
    # --entrypoint replaces ENTRYPOINT and drops the image's CMD.
    assert entrypoint_and_cmd(img, [], "/other") == (["/other"], [])
    assert entrypoint_and_cmd(img, ["y"], "/other") == (["/other"], ["y"])
    assert entrypoint_and_cmd(img, ["echo", "hi"], "") == ([], ["echo", "hi"])
    # The entrypoint is one word, never split.
    assert entrypoint_and_cmd(_image(), [], "sh -c") == (["sh -c"], [])


def test_environment_order_and_overrides():
    img = _image(Env=["PATH=/img/bin", "A=img", "B=img"])
    config_env = merged_env(img, ["B=user", "C=user", "B=again"])
    assert config_env == ["B=again", "C=user", "PATH=/img/bin", "A=img"]
    env = container_env(config_env, "host1", tty=True)
    assert env == ["PATH=/img/bin", "HOSTNAME=host1", "TERM=xterm", "B=again", "C=user", "A=img"]
    assert container_env([], "h", tty=False)[0].startswith("PATH=/usr/local/sbin")


def test_working_dir():
    assert working_dir(_image(WorkingDir="/app"), None) == "/app"
    assert working_dir(_image(WorkingDir="/app"), "/other") == "/other"
    assert working_dir(_image(), None) == "/"
    with pytest.raises(InvalidOption, match="needs to be an absolute path"):
        working_dir(_image(), "rel")


@pytest.mark.parametrize("text, number", [("SIGTERM", 15), ("term", 15), ("9", 9), ("SIGUSR1", 10),
                                          ("RTMIN+3", int(signal.SIGRTMIN) + 3)])
def test_signals(text, number):
    assert parse_signal(text) == number


def test_bad_signal():
    with pytest.raises(InvalidOption):
        parse_signal("SIGNOPE")


def test_healthcheck_overrides():
    img = _image(Healthcheck={"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000})
    check = healthcheck(img, RunOptions())
    assert check == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                     "Timeout": 30_000_000_000, "StartPeriod": 0, "Retries": 3}
    assert healthcheck(img, RunOptions(health_retries=1, health_interval=0.5))["Interval"] == 500_000_000
    assert healthcheck(img, RunOptions(no_healthcheck=True)) is None
    assert healthcheck(_image(Healthcheck={"Test": ["NONE"]}), RunOptions()) is None
    assert healthcheck(_image(), RunOptions(health_cmd="x"))["Test"] == ["CMD-SHELL", "x"]


def test_capability_rules():
    assert capabilities([], [], False) == list(DEFAULT_CAPABILITIES)
    assert "CAP_CHOWN" not in capabilities([], ["chown"], False)
    assert capabilities(["NET_ADMIN"], [], False)[-1] == "CAP_NET_ADMIN"
    assert capabilities(["CHOWN"], ["ALL"], False) == ["CAP_CHOWN"]
    every = capabilities(["ALL"], ["SYS_ADMIN"], False)
    assert "CAP_SYS_ADMIN" not in every and "CAP_SYS_MODULE" in every
    assert "CAP_SYS_ADMIN" in capabilities([], ["ALL"], True)
    with pytest.raises(InvalidOption, match="unknown capability"):
        capabilities(["NOPE"], [], False)


def test_seccomp_profile_conversion():
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
            {"names": ["weird"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
            {"names": ["new"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        ]}
    with_chroot = seccomp_for(profile, ["CAP_SYS_CHROOT"])
    without = seccomp_for(profile, [])
    assert with_chroot["defaultErrnoRet"] == 38
    names = [(s["names"], s["action"]) for s in with_chroot["syscalls"]]
    assert (["chroot"], "SCMP_ACT_ALLOW") in names and (["chroot"], "SCMP_ACT_ERRNO") not in names
    assert (["chroot"], "SCMP_ACT_ERRNO") in [(s["names"], s["action"]) for s in without["syscalls"]]
    assert not any(s["names"] in (["weird"], ["new"]) for s in with_chroot["syscalls"])
    assert with_chroot["syscalls"][-1]["args"][0]["value"] == 8
    import os

    if os.uname().machine == "x86_64":
        assert with_chroot["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
