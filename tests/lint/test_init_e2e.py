"""`dockyard init` templates built and run for real (runc, overlayfs).

The static template is built unchanged on busybox, imported under the
template's pinned default tag. The Python template is built on a stand-in
"python" base: a busybox rootfs whose ``python`` and ``pip`` are tiny shell
scripts (a real CPython rootfs needs the network); what they record shows
the template's steps ran in order with the right files.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from support import make_busybox_rootfs, needs_root

from dockyard import api, init, lint
from dockyard.containers import RunOptions, run
from dockyard.init import InitOptions

pytestmark = [needs_root(), pytest.mark.root]

# `python -m venv DIR` makes DIR/bin with copies of both stubs; `python -c`
# succeeds (health probes); `python FILE` "runs" FILE's print("...") lines.
PYTHON_STUB = r"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp /usr/local/bin/python /usr/local/bin/pip "$3/bin/" && exit 0
fi
[ "$1" = "-c" ] && exit 0
echo "python $* as $(id -u)"
sed -n 's/^print("\(.*\)")$/\1/p' "$1"
"""
# records each call and the requirements it was given next to the venv
PIP_STUB = r"""#!/bin/sh
log="$(dirname "$0")/../installed.txt"
echo "pip $*" >> "$log"
if [ "$1" = "install" ] && [ "$2" = "-r" ]; then cat "$3" >> "$log"; fi
"""


def run_output(store, image, cmd: list[str]) -> str:
    out = store.root / "run-output.txt"
    with open(out, "wb") as f:
        _, code = run(store, image, RunOptions(command=cmd, network="none"), stdout=f, stderr=f)
    text = out.read_text()
    assert code == 0, text
    return text


def build(store, ctx: Path, tag: str):
    findings = lint.check((ctx / "Dockerfile").read_text(), context_dir=ctx)
    assert findings == [], lint.format_text(findings)
    return api.build(ctx, store=store, tags=[tag])


def test_static_template_builds_and_serves(store, busybox_tar, tmp_path):
    api.import_image(busybox_tar, "busybox:1.37.0", store=store)  # the template's pinned default
    ctx = tmp_path / "site"
    (ctx / "public").mkdir(parents=True)
    (ctx / "public" / "index.html").write_text("<h1>hello from dockyard init</h1>\n")
    (ctx / "public" / "private.html").write_text("secret-ish\n")
    (ctx / "public" / "private.html").chmod(0o600)  # the files stage makes it readable
    init.write(ctx)
    image = build(store, ctx, "site:1")

    cfg = image.config["config"]
    assert cfg["User"] == "65534:65534"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Labels"]["org.opencontainers.image.title"] == "site"
    probe = cfg["Healthcheck"]["Test"]
    assert probe[0] == "CMD"
    # start the image's own CMD, wait until its own health check passes, then fetch
    check = shlex.join(probe[1:])
    script = (f"{shlex.join(cfg['Cmd'])} 2>/dev/null & "
              f"i=0; until {check} 2>/dev/null || [ $i -ge 50 ]; do i=$((i+1)); sleep 0.2; done; "
              f"{check} && echo healthy; "
              "wget -q -O - http://127.0.0.1:8080/ && wget -q -O - http://127.0.0.1:8080/private.html; "
              "id -u; kill $!")
    out = run_output(store, image, ["sh", "-c", script])
    assert out.splitlines() == ["healthy", "<h1>hello from dockyard init</h1>", "secret-ish", "65534"]


@pytest.fixture
def python_stub_base(store, tmp_path):
    root = make_busybox_rootfs(tmp_path / "pyroot")
    bindir = root / "usr" / "local" / "bin"
    bindir.mkdir(parents=True)
    for name, text in (("python", PYTHON_STUB), ("pip", PIP_STUB)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    tar = tmp_path / "pyroot.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tar), "."], check=True)
    return api.import_image(tar, "stub/python:3.12-slim", store=store)


def test_python_template_builds_and_runs_on_a_stub_python(store, python_stub_base, tmp_path):
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "requirements.txt").write_text("flask==3.0.3\n")
    (ctx / "app.py").write_text('print("hello from app.py")\n')
    (ctx / ".env").write_text("SECRET=1\n")  # .dockerignore keeps it out
    init.write(ctx, options=InitOptions(base="stub/python:3.12-slim"))
    text = (ctx / "Dockerfile").read_text()
    assert "RUN --mount=type=cache,target=/root/.cache/pip" in text
    image = build(store, ctx, "app:1")

    cfg = image.config["config"]
    assert cfg["User"] == "65534:65534"
    assert cfg["Cmd"] == ["python", "app.py"]
    assert cfg["ExposedPorts"] == {"8000/tcp": {}}
    assert cfg["Healthcheck"]["Test"][:3] == ["CMD", "python", "-c"]
    assert "PYTHONUNBUFFERED=1" in cfg["Env"]
    assert cfg["Env"][0].startswith("PATH=/opt/venv/bin:")
    assert run_output(store, image, []).splitlines() == ["python app.py as 65534", "hello from app.py"]
    listing = run_output(store, image, ["sh", "-c", "cat /opt/venv/installed.txt; ls -A /app"])
    assert listing.splitlines() == ["pip install -r requirements.txt", "flask==3.0.3", "app.py",
                                    "requirements.txt"]
    history = [h.get("created_by", "") for h in image.config["history"]]
    assert not any("pip install" in h for h in history)  # installs stayed in the build stage
    assert json.loads(json.dumps(cfg["Labels"]))["org.opencontainers.image.title"] == "app"
