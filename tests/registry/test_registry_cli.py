"""The CLI commands, wired into the main group as the lead will wire them."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from dockyard.cli import registry_cmds
from dockyard.cli.main import cli
from dockyard.reference import Reference
from dockyard.registry import progress as ev

PASSWORD = "wonderland"


@pytest.fixture
def dockyard(store):
    for command in (registry_cmds.login, registry_cmds.logout, registry_cmds.push,
                    registry_cmds.pull, registry_cmds.manifest):
        cli.add_command(command)
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, ["--root", str(store.root), *args], input=input)
    return invoke


def test_cli_login_push_pull_inspect_logout(dockyard, basic_registry, store, base_image, docker_config,
                                            unique, tmp_path):
    host = basic_registry.host
    bad = dockyard("login", host, "-u", "alice", "--password-stdin", input="nope\n")
    assert bad.exit_code == 1 and "dockyard: error:" in bad.output and "401" in bad.output
    assert "nope" not in bad.output

    ok = dockyard("login", host, "-u", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert ok.exit_code == 0, ok.output
    assert "Login Succeeded" in ok.output and PASSWORD not in ok.output
    assert host in json.loads((docker_config / "config.json").read_text())["auths"]

    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    pushed = dockyard("push", name)
    assert pushed.exit_code == 0, pushed.output
    assert f"The push refers to repository [{host}/{unique}]" in pushed.output
    assert ": Pushed" in pushed.output
    digest_line = pushed.output.strip().splitlines()[-1]
    assert digest_line.startswith("1: digest: sha256:") and " size: " in digest_line
    digest = digest_line.split()[2]

    inspected = dockyard("manifest", "inspect", name)
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["config"]["digest"] == base_image.id

    store.untag(str(Reference.parse(name)))
    pulled = dockyard("pull", name)
    assert pulled.exit_code == 0, pulled.output
    lines = pulled.output.strip().splitlines()
    assert lines[0] == f"1: Pulling from {unique}"
    assert f"Digest: {digest}" in lines and lines[-1] == name
    assert any(line.endswith(": Already exists") for line in lines)

    quiet = dockyard("push", "-q", name)
    assert quiet.output.strip() == digest

    out = dockyard("logout", host)
    assert out.output.strip() == f"Removing login credentials for {host}"
    assert dockyard("logout", host).output.strip() == f"Not logged in to {host}"
    denied = dockyard("pull", name)
    assert denied.exit_code == 1 and "401" in denied.output


def test_password_stdin_needs_username(dockyard, basic_registry):
    result = dockyard("login", basic_registry.host, "--password-stdin", input="x\n")
    assert result.exit_code == 2 and "Must provide --username" in result.output


def test_tty_printer_draws_a_live_view():
    out = io.StringIO()
    printer = registry_cmds._Printer(out, tty=True)
    printer(ev.Event(ev.STATUS, "x", detail="The push refers to repository [r/x]"))
    printer(ev.Event(ev.PREPARING, "aaaa"))
    printer(ev.Event(ev.PREPARING, "bbbb"))
    printer(ev.Event(ev.PUSHING, "aaaa", 50, 100))
    printer(ev.Event(ev.PUSHED, "aaaa"))
    printer(ev.Event(ev.LAYER_EXISTS, "bbbb"))
    printer(ev.Event(ev.DIGEST, "x", detail="1: digest: sha256:abc size: 1"))
    text = out.getvalue()
    assert "\x1b[2A" in text and "aaaa: Pushed" in text and "bbbb: Layer already exists" in text
    assert text.endswith("1: digest: sha256:abc size: 1\n")


def test_plain_printer_prints_a_line_per_layer():
    out = io.StringIO()
    printer = registry_cmds._Printer(out, tty=False)
    for event in (ev.Event(ev.WAITING, "aaaa"), ev.Event(ev.DOWNLOADING, "aaaa", 5, 10),
                  ev.Event(ev.PULL_COMPLETE, "aaaa"), ev.Event(ev.ALREADY_EXISTS, "bbbb")):
        printer(event)
    assert out.getvalue() == "aaaa: Pull complete\nbbbb: Already exists\n"
