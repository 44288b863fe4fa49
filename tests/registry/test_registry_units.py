"""The pure parts: challenge parsing, scopes, the token cache, the auth flow
driven by hand, and Docker's config.json format."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from dockyard.registry import Credential, DockerConfig, Request, Response, TokenCache
from dockyard.registry.auth import Authenticator, merge_scopes, parse_challenges
from dockyard.registry.credentials import HUB_SERVER, server_key
from dockyard.registry.errors import CredentialsError, Unauthorized
from dockyard.registry.transport import Headers


def test_parse_bearer_challenge_with_commas_in_quotes():
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:samalba/my-app:pull,push"')
    [c] = parse_challenges([header])
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:samalba/my-app:pull,push"}


def test_parse_several_challenges_and_basic():
    got = parse_challenges(['Basic realm="x y", Bearer realm="https://a/t", error="invalid_token"'])
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].params == {"realm": "x y"}
    assert got[1].params["error"] == "invalid_token"


def test_merge_scopes_unites_actions():
    assert merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")
    assert merge_scopes(["repository:a:pull,push", "repository:a:pull"]) == ("repository:a:pull,push",)


def test_token_cache_expires():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put(("k",), "tok", 60)
    assert cache.get(("k",)) == "tok"
    now[0] += 50
    assert cache.get(("k",)) == "tok"
    now[0] += 10  # within the safety margin of expiry
    assert cache.get(("k",)) is None


def drive(flow, answer):
    """Run an auth flow, answering each request with ``answer(request)``."""
    request = next(flow)
    sent = [request]
    while True:
        try:
            request = flow.send(answer(request))
        except StopIteration:
            return sent
        sent.append(request)


def challenge_401(request):
    return Response(401, Headers({"WWW-Authenticate": 'Bearer realm="https://auth.test/token",'
                                                      'service="reg.test"'}), request.url)


def test_bearer_flow_fetches_token_once_per_scope():
    cred = Credential("alice", "s3cret")
    auth = Authenticator("reg.test", lambda: cred, TokenCache())

    def answer(request):
        if request.url.startswith("https://auth.test/token"):
            body = json.dumps({"token": "T1", "expires_in": 300}).encode()
            return Response(200, Headers(), request.url, stream=[body])
        if request.headers.get("Authorization") == "Bearer T1":
            return Response(200, Headers(), request.url)
        return challenge_401(request)

    get = Request("GET", "https://reg.test/v2/app/manifests/1")
    sent = drive(auth.flow(get, ["repository:app:pull"]), answer)
    assert [r.url.split("?")[0] for r in sent] == [get.url, "https://auth.test/token", get.url]
    token_request = sent[1]
    assert "scope=repository%3Aapp%3Apull" in token_request.url and "account=alice" in token_request.url
    assert token_request.headers.get("Authorization") == cred.basic()

    # the challenge is known now and the token cached: one request, no token fetch
    sent = drive(auth.flow(get, ["repository:app:pull"]), answer)
    assert len(sent) == 1 and sent[0].headers.get("Authorization") == "Bearer T1"
    # another scope needs another token
    sent = drive(auth.flow(get, ["repository:other:pull"]), answer)
    assert sent[0].url.startswith("https://auth.test/token")


def test_bad_password_at_token_server_is_unauthorized():
    auth = Authenticator("reg.test", lambda: Credential("alice", "nope"), TokenCache())

    def answer(request):
        if request.url.startswith("https://auth.test/token"):
            return Response(401, Headers(), request.url, reason="Unauthorized")
        return challenge_401(request)

    with pytest.raises(Unauthorized) as info:
        drive(auth.flow(Request("GET", "https://reg.test/v2/"), []), answer)
    assert "registry reg.test" in str(info.value) and "401" in str(info.value)
    assert "nope" not in str(info.value)


def test_basic_flow_and_anonymous_basic():
    auth = Authenticator("reg.test", lambda: Credential("bob", "pw"), TokenCache())

    def answer(request):
        if request.headers.get("Authorization") == Credential("bob", "pw").basic():
            return Response(200, Headers(), request.url)
        return Response(401, Headers({"WWW-Authenticate": 'Basic realm="r"'}), request.url)

    assert len(drive(auth.flow(Request("GET", "https://reg.test/v2/"), []), answer)) == 2
    assert len(drive(auth.flow(Request("GET", "https://reg.test/v2/x"), []), answer)) == 1
    anonymous = Authenticator("reg.test", lambda: None, TokenCache())
    assert len(drive(anonymous.flow(Request("GET", "https://reg.test/v2/"), []), answer)) == 1


def test_credential_repr_hides_secrets():
    text = repr(Credential("alice", "s3cret", "idtok"))
    assert "s3cret" not in text and "idtok" not in text and "alice" in text


# -- config.json ------------------------------------------------------------------

@pytest.mark.parametrize("server, key", [
    (None, HUB_SERVER), ("docker.io", HUB_SERVER), ("index.docker.io", HUB_SERVER),
    ("https://index.docker.io/v1/", HUB_SERVER), ("registry-1.docker.io", HUB_SERVER),
    ("localhost:5000", "localhost:5000"), ("https://ghcr.io", "ghcr.io"),
    ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
])
def test_server_keys_follow_docker(server, key):
    assert server_key(server) == key


def test_config_read_write_like_docker(tmp_path):
    tmp_path = tmp_path / "cfg"
    tmp_path.mkdir()
    (tmp_path / "config.json").write_text(json.dumps({
        "auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                  "https://ghcr.io": {"auth": base64.b64encode(b"gh:tok:en").decode()}},
        "detachKeys": "ctrl-x"}))
    config = DockerConfig(tmp_path)
    assert config.get("docker.io") == Credential("hub", "pw")
    assert config.get("ghcr.io") == Credential("gh", "tok:en")
    assert config.get("quay.io") is None

    config.store("quay.io", Credential("q", "pw2"))
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["detachKeys"] == "ctrl-x"
    assert base64.b64decode(data["auths"]["quay.io"]["auth"]) == b"q:pw2"
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left behind

    assert DockerConfig(tmp_path).erase("https://ghcr.io/") is True
    assert DockerConfig(tmp_path).get("ghcr.io") is None


def test_identity_token_entries(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.test": {"identitytoken": "tok"}}}))
    assert DockerConfig(tmp_path).get("r.test") == Credential("", "", "tok")


def test_broken_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="config.json is not valid JSON"):
        DockerConfig(tmp_path)


def test_missing_helper_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "no-such-helper-xyz"}))
    with pytest.raises(CredentialsError, match="docker-credential-no-such-helper-xyz is not installed"):
        DockerConfig(tmp_path).get("r.test")


def test_request_repr_hides_secrets():
    request = Request("POST", "https://auth.test/token", Headers({"Authorization": "Basic c2VjcmV0"}),
                      body=b"grant_type=refresh_token&refresh_token=SECRET")
    assert "SECRET" not in repr(request) and "c2VjcmV0" not in repr(request)


def test_public_names_are_exported_and_sorted():
    from dockyard import registry

    assert registry.__all__ == sorted(registry.__all__)
    assert all(hasattr(registry, name) for name in registry.__all__)
