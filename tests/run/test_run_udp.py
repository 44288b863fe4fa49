"""`-p HOST:CONTAINER/udp`: a datagram from the host reaches a server in the
container, and its answer comes back (issue #3).

The server is a tiny static C program built here (busybox has no UDP echo
server), put in an image built by dockyard on top of busybox.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.root

UDP_ECHO_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Answers every datagram with "echo:" and the datagram. */
int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9999;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udpecho");
        return 1;
    }
    printf("listening on %d/udp\n", port);
    fflush(stdout);
    for (;;) {
        char buf[2048] = "echo:";
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(fd, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0)
            sendto(fd, buf, n + 5, 0, (struct sockaddr *)&peer, len);
    }
}
"""


@pytest.fixture(scope="module")
def udp_image(run_store, busybox, tmp_path_factory):
    """udpecho:test — busybox plus /udpecho, built by dockyard."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build the static UDP echo server")
    ctx = tmp_path_factory.mktemp("udp-ctx")
    (ctx / "udpecho.c").write_text(UDP_ECHO_C)
    built = subprocess.run([gcc, "-static", "-O2", "-o", str(ctx / "udpecho"), str(ctx / "udpecho.c")],
                           capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.skip(f"gcc cannot link statically (apt-get install libc6-dev?): {built.stderr.strip()[-300:]}")
    (ctx / "udpecho.c").unlink()
    (ctx / "Dockerfile").write_text('FROM busybox:latest\nCOPY udpecho /udpecho\nENTRYPOINT ["/udpecho"]\n')
    from dockyard import api

    api.build(ctx, store=run_store, tags=["udpecho:test"])
    return "udpecho:test"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ask(port: int, message: bytes, timeout: float = 10.0) -> bytes:
    """Send until an answer comes (the server may still be starting)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        while True:
            sock.sendto(message, ("127.0.0.1", port))
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer from 127.0.0.1:{port}/udp") from None
                continue
            assert peer == ("127.0.0.1", port)
            return data


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_udp_port_is_published(dy, udp_image, until):
    port = _free_udp_port()
    started = dy("run", "-d", "--name", "udp", "-p", f"127.0.0.1:{port}:9999/udp", udp_image)
    assert started.returncode == 0, started.stderr
    assert _ask(port, b"ping") == b"echo:ping"
    # A second client gets its own answers.
    assert _ask(port, b"pong") == b"echo:pong"
    assert f"127.0.0.1:{port}->9999/udp" in dy("ps").stdout
    assert dy("logs", "udp").stdout == "listening on 9999/udp\n"
    # The forwarding ends with the container: the host port is free again.
    assert dy("rm", "-f", "udp").returncode == 0
    until(lambda: _port_free(port), timeout=5)


def test_udp_random_port_and_port_in_use(dy, udp_image):
    started = dy("run", "-d", "-p", "127.0.0.1::9999/udp", udp_image)
    assert started.returncode == 0, started.stderr
    doc = json.loads(dy("container", "inspect", started.stdout.strip()).stdout)[0]
    binding = doc["NetworkSettings"]["Ports"]["9999/udp"][0]
    port = int(binding["HostPort"])
    assert binding["HostIp"] == "127.0.0.1" and port > 0
    assert _ask(port, b"random") == b"echo:random"
    refused = dy("run", "--rm", "-p", f"127.0.0.1:{port}:9999/udp", udp_image)
    assert refused.returncode == 125 and "already allocated" in refused.stderr
