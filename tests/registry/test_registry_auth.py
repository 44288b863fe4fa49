"""Auth against real registries: htpasswd (Basic) and token (Bearer), login
and logout into Docker's config.json, identity tokens, credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap

import pytest

from dockyard.reference import Reference
from dockyard.registry import Unauthorized, inspect_manifest, login, logout, pull, push
from dockyard.registry.auth import SHARED_TOKENS

USER, PASSWORD = "alice", "wonderland"


def read_config(docker_config):
    return json.loads((docker_config / "config.json").read_text())


# -- Basic ----------------------------------------------------------------------

def test_basic_auth_login_push_pull_logout(basic_registry, store, base_image, fresh_store, options,
                                           docker_config, unique):
    host = basic_registry.host
    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))

    with pytest.raises(Unauthorized) as info:
        push(store, name, options=options)
    assert host in str(info.value) and unique in str(info.value) and "401" in str(info.value)

    with pytest.raises(Unauthorized):
        login(host, USER, "wrong", options=options)
    assert not (docker_config / "config.json").exists()

    login(host, USER, PASSWORD, options=options)
    config = read_config(docker_config)
    assert base64.b64decode(config["auths"][host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert stat.S_IMODE(os.stat(docker_config / "config.json").st_mode) == 0o600

    push(store, name, options=options)
    assert pull(fresh_store, name, options=options).id == base_image.id

    assert logout(host, options=options) is True
    assert host not in read_config(docker_config)["auths"]
    assert logout(host, options=options) is False
    with pytest.raises(Unauthorized):
        inspect_manifest(name, options=options)


def test_login_keeps_other_config_keys(basic_registry, options, docker_config):
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {"other.example:5000": {"auth": "eDp5"}}, "psFormat": "table {{.ID}}"}))
    login(basic_registry.host, USER, PASSWORD, options=options)
    config = read_config(docker_config)
    assert config["psFormat"] == "table {{.ID}}"
    assert set(config["auths"]) == {"other.example:5000", basic_registry.host}


# -- token ----------------------------------------------------------------------

def test_token_auth_login_push_pull(token_registry, store, base_image, fresh_store, options, unique):
    host, server = token_registry.host, token_registry.token_server
    with pytest.raises(Unauthorized, match="incorrect username or password|bad credentials"):
        login(host, USER, "wrong", options=options)
    login(host, USER, PASSWORD, options=options)
    assert server.requests[-1][1] == USER

    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    assert any(f"repository:{unique}:pull,push" in r[2] for r in server.requests)

    assert pull(fresh_store, name, options=options).id == base_image.id
    # tokens are cached per scope until they expire: a second pull asks for none
    before = len(server.requests)
    pull(fresh_store, name, options=options)
    assert len(server.requests) == before


def test_token_refused_by_registry_is_fetched_again(token_registry, store, base_image, fresh_store,
                                                    options, unique):
    host, server = token_registry.host, token_registry.token_server
    login(host, USER, PASSWORD, options=options)
    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    pull(fresh_store, name, options=options)
    # every cached token goes bad (revoked, say): the registry answers 401
    with SHARED_TOKENS._lock:
        for key, (token, expires) in list(SHARED_TOKENS._tokens.items()):
            SHARED_TOKENS._tokens[key] = ("bogus" + token[5:], expires)
    before = len(server.requests)
    assert pull(fresh_store, name, options=options).id == base_image.id
    assert len(server.requests) == before + 1


def test_token_anonymous_pull_of_public_repository(token_registry, store, base_image, fresh_store,
                                                   options, docker_config, unique):
    host = token_registry.host
    login(host, USER, PASSWORD, options=options)
    public = f"{host}/public/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(public)))
    push(store, public, options=options)
    logout(host, options=options)

    assert pull(fresh_store, public, options=options).id == base_image.id
    private = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(private)))
    with pytest.raises(Unauthorized) as info:
        push(store, private, options=options)
    assert host in str(info.value) and unique in str(info.value)


def test_identity_token_uses_oauth_refresh_grant(token_registry, store, base_image, fresh_store,
                                                 options, docker_config, unique):
    host, server = token_registry.host, token_registry.token_server
    login(host, USER, PASSWORD, options=options)
    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {host: {"identitytoken": f"refresh-{USER}"}}}))
    SHARED_TOKENS._tokens.clear()
    assert pull(fresh_store, name, options=options).id == base_image.id
    assert server.requests[-1][0] == "POST"


# -- credential helpers -----------------------------------------------------------

HELPER = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    path = os.environ["DYTEST_STORE"]
    data = json.load(open(path)) if os.path.exists(path) else {{}}
    action = sys.argv[1]
    text = sys.stdin.read()
    if action == "get":
        entry = data.get(text.strip())
        if entry is None:
            print("credentials not found in native keychain")
            sys.exit(1)
        print(json.dumps({{"ServerURL": text.strip(), "Username": entry[0], "Secret": entry[1]}}))
    elif action == "store":
        doc = json.loads(text)
        data[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
        json.dump(data, open(path, "w"))
    elif action == "erase":
        if data.pop(text.strip(), None) is None:
            print("credentials not found in native keychain")
            sys.exit(1)
        json.dump(data, open(path, "w"))
    elif action == "list":
        print(json.dumps({{k: v[0] for k, v in data.items()}}))
    """)


@pytest.fixture
def helper(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-dytest"
    script.write_text(HELPER.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DYTEST_STORE", str(tmp_path / "helper-store.json"))
    return tmp_path / "helper-store.json"


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_credential_helper_login_pull_logout(how, helper, basic_registry, store, base_image, fresh_store,
                                             options, docker_config, unique):
    host = basic_registry.host
    config = {"credsStore": "dytest"} if how == "credsStore" else {"credHelpers": {host: "dytest"}}
    (docker_config / "config.json").write_text(json.dumps(config))

    login(host, USER, PASSWORD, options=options)
    assert json.loads(helper.read_text()) == {host: [USER, PASSWORD]}
    saved = (docker_config / "config.json").read_text()
    assert PASSWORD not in saved and read_config(docker_config)["auths"][host] == {}

    name = f"{host}/{unique}:1"
    store.tag(base_image.id, str(Reference.parse(name)))
    push(store, name, options=options)
    assert pull(fresh_store, name, options=options).id == base_image.id

    assert logout(host, options=options) is True
    assert json.loads(helper.read_text()) == {}
    with pytest.raises(Unauthorized):
        inspect_manifest(name, options=options)
