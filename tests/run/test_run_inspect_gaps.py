"""`inspect` details Docker users read: State.OOMKilled, and the ports of a
`--network none` container (recorded, never published)."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from dockyard import container as ops

pytestmark = pytest.mark.root

# dd touches its whole 200 MiB buffer: more than memory + swap allows
HOG = ("dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")


def _state(dy, name: str) -> dict:
    proc = dy("container", "inspect", name, check=True)
    return json.loads(proc.stdout)[0]["State"]


def test_oom_killed_container_says_so(dy, until):
    fg = dy("run", "--name", "hog-fg", "-m", "48m", "busybox", *HOG)
    assert fg.returncode == 137
    state = _state(dy, "hog-fg")
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 137, True)
    dy("run", "-d", "--name", "hog-bg", "-m", "48m", "busybox", *HOG, check=True)
    until(lambda: _state(dy, "hog-bg")["Status"] == "exited", timeout=30)
    state = _state(dy, "hog-bg")
    assert (state["ExitCode"], state["OOMKilled"]) == (137, True)


def test_other_ends_are_not_oom_kills(dy, until):
    # the same limit without going over, and a SIGKILL that is not the OOM killer's
    assert dy("run", "--name", "fits", "-m", "48m", "busybox", "dd", "if=/dev/zero", "of=/dev/null",
              "bs=16M", "count=1").returncode == 0
    assert _state(dy, "fits")["OOMKilled"] is False
    dy("run", "-d", "--name", "killed", "-m", "48m", "busybox", "sleep", "60", check=True)
    dy("kill", "killed", check=True)
    until(lambda: _state(dy, "killed")["Status"] == "exited", timeout=30)
    state = _state(dy, "killed")
    assert (state["ExitCode"], state["OOMKilled"]) == (137, False)


def test_network_none_records_published_ports_and_binds_none(dy):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = dy("run", "-d", "--name", "lonely", "--network", "none", "-p", f"{port}:80",
              "-p", "127.0.0.1::53/udp", "-P", "busybox", "sleep", "60")
    assert (proc.returncode, proc.stderr) == (0, "")
    doc = ops.inspect(dy.root, "lonely")
    assert doc["HostConfig"]["NetworkMode"] == "none"
    assert doc["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": str(port)}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert doc["NetworkSettings"]["Ports"] == {}
    assert set(doc["Config"]["ExposedPorts"]) == {"80/tcp", "53/udp"}
    assert dy("port", "lonely").stdout == ""
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))
    foreground = dy("run", "--rm", "--network", "none", "-p", f"{port}:80", "busybox", "echo", "hi")
    assert (foreground.returncode, foreground.stdout, foreground.stderr) == (0, "hi\n", "")


@pytest.mark.slow
def test_network_none_ports_same_as_docker(docker, dy):
    name = f"dockyard-none-p-{time.monotonic_ns()}"
    fmt = "{{json .HostConfig.PortBindings}} {{json .NetworkSettings.Ports}} {{json .Config.ExposedPorts}}"
    theirs = subprocess.run([docker, "run", "-d", "--name", name, "--network", "none", "-p", "18080:80",
                             "busybox", "sleep", "30"], capture_output=True, text=True, timeout=60, check=False)
    try:
        shown = subprocess.run([docker, "inspect", "-f", fmt, name], capture_output=True, text=True,
                               timeout=60, check=False).stdout.split()
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=60, check=False)
    ours = dy("run", "-d", "--name", "none-p", "--network", "none", "-p", "18080:80", "busybox", "sleep", "30")
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
    doc = ops.inspect(dy.root, "none-p")
    mine = [doc["HostConfig"]["PortBindings"], doc["NetworkSettings"]["Ports"], doc["Config"]["ExposedPorts"]]
    assert mine == [json.loads(part) for part in shown]
