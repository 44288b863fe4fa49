"""Networks: none, host, and private (slirp4netns) with published ports."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, until) -> str:
    def fetch():
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return None
    return until(fetch, timeout=10, interval=0.1)


def test_network_none_has_only_loopback(ctr_run):
    out = ctr_run("ip", "-o", "link", network="none").out
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]


def test_network_host_shares_interfaces(ctr_run):
    out = ctr_run("ip", "-o", "link", network="host").out
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    assert names == set(os.listdir("/sys/class/net"))
    assert ctr_run("hostname", network="host").out.strip() == os.uname().nodename


def test_private_network_is_the_default(ctr_run):
    result = ctr_run("sh", "-c", "ip -o -4 addr; cat /etc/hosts /etc/resolv.conf; hostname")
    assert "tap0" in result.out and "10.0.2.100/24" in result.out
    assert f"10.0.2.100\t{result.id[:12]}" in result.out
    assert "nameserver 10.0.2.3" in result.out


def test_published_port_reaches_a_web_server(dy, until):
    port = _free_port()
    started = dy("run", "-d", "--name", "web", "-p", f"{port}:8080", "busybox", "sh", "-c", HTTPD)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    assert _get(f"http://127.0.0.1:{port}/", until) == f"hello from {cid[:12]}\n"
    ps = dy("ps").stdout
    assert f"0.0.0.0:{port}->8080/tcp" in ps and "web" in ps


def test_random_host_port_is_recorded(dy, until):
    started = dy("run", "-d", "-p", "127.0.0.1::8080", "busybox", "sh", "-c", HTTPD)
    assert started.returncode == 0, started.stderr
    doc = json.loads(dy("container", "inspect", started.stdout.strip()).stdout)[0]
    binding = doc["NetworkSettings"]["Ports"]["8080/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
    assert _get(f"http://127.0.0.1:{binding['HostPort']}/", until).startswith("hello from")


def test_port_in_use_is_refused(dy):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = dy("run", "--rm", "-p", f"{port}:80", "busybox", "true")
        assert proc.returncode == 125 and "already allocated" in proc.stderr


def _host_address() -> str | None:
    for name in sorted(os.listdir("/sys/class/net")):
        if name == "lo":
            continue
        try:
            import fcntl
            import struct

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                packed = fcntl.ioctl(s, 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
                return socket.inet_ntoa(packed[20:24])
        except OSError:
            continue
    return None


def test_private_network_has_outbound_access(ctr_run):
    address = _host_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this host")

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"outside")

        def log_message(self, *args):
            pass

    server = HTTPServer((address, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{address}:{server.server_address[1]}/"
        assert ctr_run("wget", "-q", "-O", "-", url).out == "outside"
    finally:
        server.shutdown()
        server.server_close()
