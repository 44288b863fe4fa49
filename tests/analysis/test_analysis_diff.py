"""`dockyard diff IMAGE1 IMAGE2` on images built by dockyard: files, sizes,
config and installed packages that differ."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dockyard import api
from dockyard.analysis import diff as diff_mod
from dockyard.analysis import diff_images, format_diff
from dockyard.cli.inspect_cmds import diff


def _diff(store, a="pkgs:1", b="pkgs:2"):
    return diff_images(store, api.get_image(store, a), api.get_image(store, b), names=(a, b))


def test_files(analysis_store):
    files = _diff(analysis_store)["files"]
    assert [f["path"] for f in files["added"]] == ["/opt/added.txt"]
    assert files["added"][0]["size"] == len("new file\n")
    assert [f["path"] for f in files["removed"]] == ["/bin/ls"]
    assert files["removed"][0]["kind"] == "symlink" and files["removed"][0]["target"] == "busybox"
    changed = {c["path"]: c for c in files["changed"]}
    assert set(changed) == {"/opt/conf.txt", "/opt/same.txt", "/var/lib/dpkg/status"}
    # same size, other bytes: found by hashing
    assert changed["/opt/conf.txt"]["changes"] == ["content"]
    assert changed["/opt/conf.txt"]["size_first"] == changed["/opt/conf.txt"]["size_second"] == 5
    # copied again with the same bytes, then chmod: only the mode differs
    assert changed["/opt/same.txt"]["changes"] == ["mode"]
    assert changed["/opt/same.txt"]["mode"] == ["0o644", "0o600"]
    assert changed["/var/lib/dpkg/status"]["changes"] == ["content"]
    assert files["summary"] == {"added": 1, "removed": 1, "changed": 3,
                                "bytes_added": len("new file\n"), "bytes_removed": 0}


def test_only_the_needed_files_are_hashed(analysis_store, monkeypatch):
    calls = []
    real = diff_mod.read_layer

    def spy(blob, **kw):
        calls.append((kw.get("index"), frozenset(kw.get("only") or ()), kw.get("hashing")))
        return real(blob, **kw)

    monkeypatch.setattr(diff_mod, "read_layer", spy)
    _diff(analysis_store)
    hashed = set().union(*(only for _, only, hashing in calls if hashing))
    assert hashed == {"opt/conf.txt", "opt/same.txt"}
    assert 0 not in {index for index, _, _ in calls}  # the busybox layer is never read again


def test_sizes_and_layers(analysis_store):
    a, b = api.get_image(analysis_store, "pkgs:1"), api.get_image(analysis_store, "pkgs:2")
    d = _diff(analysis_store)
    first, second = d["images"]
    assert first["name"] == "pkgs:1" and second["id"] == b.id
    assert first["size"] == sum(layer["size"] for layer in a.manifest["layers"])
    assert d["size_delta"] == second["size"] - first["size"] > 0
    assert d["layers"] == {"shared": len(a.diff_ids), "only_first": 0,
                           "only_second": len(b.diff_ids) - len(a.diff_ids)}


def test_config(analysis_store):
    config = {c["key"]: (c["first"], c["second"]) for c in _diff(analysis_store)["config"]}
    assert config["Env.APP"] == ("1", "2")
    assert "Env.KEEP" not in config and "Env.PATH" not in config
    assert config["Labels.version"] == ("1", "2")
    assert config["Labels.extra"] == (None, "yes")
    assert config["Entrypoint"] == (None, ["/bin/sh", "-c"])


def test_packages(analysis_store):
    packages = _diff(analysis_store)["packages"]
    assert packages["added"] == [{"type": "deb", "name": "newtool", "version": "3.0-1"}]
    assert packages["removed"] == [{"type": "deb", "name": "bar-utils", "version": "2:0.9.1-1"}]
    assert packages["changed"] == [{"type": "deb", "name": "libfoo1", "from": "1.4-2+deb12u1",
                                    "to": "1.4-3"}]


def test_an_image_against_itself(analysis_store):
    d = _diff(analysis_store, "pkgs:1", "pkgs:1")
    assert d["files"]["summary"]["added"] == d["files"]["summary"]["changed"] == 0
    assert d["config"] == [] and d["size_delta"] == 0
    assert d["packages"] == {"added": [], "removed": [], "changed": []}


def test_against_the_base_image(analysis_store):
    d = _diff(analysis_store, "busybox:latest", "waste:1")
    added = {f["path"] for f in d["files"]["added"]}
    assert {"/opt/app/lib.so", "/opt/app/data.bin", "/opt/extra.bin", "/opt/app/new.txt"} <= added
    assert "/opt/app/big.dat" not in added
    assert d["packages"] == {"added": [], "removed": [], "changed": []}


def test_cli(analysis_store):
    runner = CliRunner()
    obj = {"store": analysis_store}
    res = runner.invoke(diff, ["pkgs:1", "pkgs:2"], obj=obj)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "--- pkgs:1" in out and "+++ pkgs:2" in out
    assert "A /opt/added.txt" in out and "D /bin/ls" in out
    assert "C /opt/conf.txt" in out and "[content]" in out
    assert "Env.APP: 1 -> 2" in out
    assert "~ libfoo1 1.4-2+deb12u1 -> 1.4-3 (deb)" in out
    assert "+ newtool 3.0-1 (deb)" in out and "- bar-utils 2:0.9.1-1 (deb)" in out
    res = runner.invoke(diff, ["pkgs:1", "pkgs:2", "--format", "json"], obj=obj)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["files"]["summary"]["changed"] == 3


def test_format_limits_the_file_list(analysis_store):
    text = format_diff(_diff(analysis_store, "busybox:latest", "waste:1"), limit=2)
    assert "... and" in text and "use --format json for all" in text
