"""`dockyard layers --html`: the page is self-contained and, loaded in a real
headless Chromium, draws a treemap with the image's known files."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from analysis_images import SIZES
from click.testing import CliRunner

from dockyard import api
from dockyard.analysis import layers_report, render_html, scan_image
from dockyard.cli.inspect_cmds import layers

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
                None)


@pytest.fixture
def browser() -> str:
    """Chromium's path; CI must have it (scripts/setup installs Debian's chromium)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: the HTML report is checked in a real browser")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
           "--window-size=1280,1000", *args, url]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


class Nodes(HTMLParser):
    """The treemap's elements: data-path -> attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, dict[str, str]] = {}
        self.treemap: dict[str, str] = {}
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "node" in a.get("class", "").split() and "data-path" in a:
            self.nodes[a["data-path"]] = a
        if a.get("id") == "treemap":
            self.treemap = a
        if tag == "body":
            self.body = a


def dom(tmp_path: Path, page: Path, fragment: str = "") -> Nodes:
    parser = Nodes()
    parser.feed(chromium(tmp_path, page.as_uri() + fragment, "--dump-dom"))
    assert parser.body.get("data-ready") == "1", "the report's script did not finish"
    return parser


@pytest.fixture(scope="module")
def page(analysis_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    res = CliRunner().invoke(layers, ["waste:1", "--html", str(out)], obj={"store": analysis_store})
    assert res.exit_code == 0, res.output
    return out


def test_page_is_self_contained(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    low = text.lower()
    for needle in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert needle not in low, needle
    assert "waste:1" in text
    assert text.count("<script") == 2  # the data and the code, both inline


def test_file_names_cannot_inject_markup(analysis_store):
    image = api.get_image(analysis_store, "waste:1")
    scan = scan_image(analysis_store, image)
    entry = scan.files["opt/app/lib.so"]
    entry.path = "opt/app/</script><img src=x onerror=alert(1)>"
    scan.files = {entry.path: entry}
    report = layers_report(analysis_store, image, scan=scan, name="<b>x</b>")
    text = render_html(scan, report)
    assert "</script><img" not in text
    assert "<b>x</b>" not in text


def test_treemap_draws_the_final_filesystem(page, tmp_path, browser):
    parsed = dom(tmp_path, page)
    nodes = parsed.nodes
    assert parsed.treemap.get("data-view") == "-1"
    for path, layer in [("/bin/busybox", 0), ("/opt/app/lib.so", 1), ("/opt/app/data.bin", 3),
                        ("/opt/extra.bin", 4)]:
        assert path in nodes, sorted(nodes)
        assert nodes[path]["data-layer"] == str(layer)
        assert "file" in nodes[path]["class"].split()
    assert nodes["/opt/app/lib.so"]["data-size"] == str(SIZES["app/lib.so"])
    assert "dir" in nodes["/opt"]["class"].split() and "dir" in nodes["/opt/app"]["class"].split()
    # deleted and overwritten bytes are not part of the final filesystem
    assert "/opt/app/big.dat" not in nodes and "/opt/app/sub" not in nodes
    assert not any("wasted" in n["class"] for n in nodes.values())
    # a directory's box holds its children: /opt/app is inside /opt
    def box(p):
        s = dict(kv.split(":") for kv in nodes[p]["style"].replace("px", "").replace(" ", "").split(";") if kv)
        return float(s["left"]), float(s["top"]), float(s["width"]), float(s["height"])
    ox, oy, ow, oh = box("/opt")
    ax, ay, aw, ah = box("/opt/app")
    assert ox <= ax and oy <= ay and ax + aw <= ox + ow + 0.5 and ay + ah <= oy + oh + 0.5


def test_layer_view_marks_wasted_files(page, tmp_path, browser):
    nodes = dom(tmp_path, page, "#layer=1").nodes
    assert "wasted" in nodes["/opt/app/big.dat"]["class"].split()
    assert "wasted" in nodes["/opt/app/data.bin"]["class"].split()
    assert "wasted" in nodes["/opt/app/sub/a.txt"]["class"].split()
    assert "wasted" not in nodes["/opt/app/lib.so"]["class"].split()
    assert "/bin/busybox" not in nodes  # another layer's file


def test_zoomed_view_shows_one_directory(page, tmp_path, browser):
    parsed = dom(tmp_path, page, "#path=/opt/app")
    assert parsed.treemap.get("data-root") == "/opt/app"
    assert set(parsed.nodes) >= {"/opt/app/lib.so", "/opt/app/data.bin"}
    assert all(p.startswith("/opt/app/") for p in parsed.nodes)


def test_screenshot(page, tmp_path, browser):
    shot = tmp_path / "report.png"
    chromium(tmp_path, page.as_uri(), f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1000)
    assert len(data) > 20_000  # a drawn page, not a blank one


def test_clicks_zoom_and_the_view_menu_switches_layers(page, tmp_path, browser):
    """Drive the page as a user would: events dispatched by a script appended to a copy."""
    driver = """<script>
    (function () {
      var map = document.getElementById("treemap"), log = [];
      function note() { log.push(map.getAttribute("data-view") + " " + map.getAttribute("data-root")); }
      document.querySelector('.node[data-path="/opt"]').dispatchEvent(new MouseEvent("click", {bubbles: true}));
      note();
      document.querySelector('.node[data-path="/opt/app/lib.so"]').dispatchEvent(new MouseEvent("click", {bubbles: true}));
      note();
      map.dispatchEvent(new MouseEvent("contextmenu", {bubbles: true, cancelable: true}));
      note();
      var select = document.getElementById("view");
      select.value = "3"; select.dispatchEvent(new Event("change"));
      note();
      document.querySelector('#layers tr[data-layer="3"]').dispatchEvent(new MouseEvent("click", {bubbles: true}));
      note();
      document.body.setAttribute("data-log", log.join("|"));
    })();
    </script></body>"""
    copy = tmp_path / "driven.html"
    copy.write_text(page.read_text().replace("</body>", driver))
    parsed = dom(tmp_path, copy)
    assert parsed.body["data-log"].split("|") == [
        "-1 /opt",  # a directory: zoom into it
        "-1 /opt/app",  # a file: zoom to its directory
        "-1 /opt",  # right-click: one level up
        "3 /",  # another view starts at the root
        "-1 /",  # clicking the selected layer's row again: back to all layers
    ]
