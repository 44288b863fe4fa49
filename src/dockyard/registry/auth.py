"""Registry authentication: challenges, scopes, tokens, and the auth flow.

The flow is a generator in the style of httpx's ``Auth.auth_flow``: it
yields requests and is sent their responses, so it never touches a socket
and tests drive it with plain values. ``Authenticator.flow`` handles, per
registry:

- anonymous access (no challenge, or a token server that serves anyone);
- ``Bearer``: a token from the challenge's realm for the scopes a request
  needs (GET with Basic credentials, or an OAuth2 POST with an identity
  token), cached per scope until it expires;
- ``Basic``: the stored user name and password;
- a 401 on a request that carried a token: drop it, authenticate again once.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from dockyard.registry.errors import RegistryHTTPError, Unauthorized, error_detail
from dockyard.registry.transport import Headers, Request, Response

__all__ = [
    "Authenticator",
    "Challenge",
    "Credential",
    "TokenCache",
    "merge_scopes",
    "parse_challenges",
    "repository_scope",
    "unauthorized",
]

DEFAULT_TOKEN_LIFETIME = 60  # seconds, when the token server does not say
_EXPIRY_MARGIN = 5
_MAX_TOKEN_BODY = 1 << 20

Flow = Generator[Request, Response, None]


@dataclass(frozen=True)
class Credential:
    """A user name with a password, or an identity (refresh) token."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # lower case: "bearer", "basic"
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


# auth-param: token "=" ( token / quoted-string ), RFC 7235
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """``WWW-Authenticate`` values -> challenges (quoted commas are fine)."""
    out: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value):
            if value[pos] in ", \t":
                pos += 1
                continue
            m = _SCHEME.match(value, pos)
            if m is None:
                break
            scheme, pos = m.group(1).lower(), m.end()
            params: dict[str, str] = {}
            while pos < len(value):
                p = _PARAM.match(value, pos)
                if p is None:
                    break
                raw = p.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params[p.group(1).lower()] = raw
                pos = p.end()
            out.append(Challenge(scheme, params))
    return out


def repository_scope(path: str, actions: Iterable[str]) -> str:
    return f"repository:{path}:{','.join(actions)}"


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Unite actions per resource: ``repository:a:pull`` + ``repository:a:push``."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        for item in scope.split():
            resource, sep, actions = item.rpartition(":")
            if not sep or not resource:
                merged.setdefault(item, [])
                continue
            have = merged.setdefault(resource, [])
            have += [a for a in actions.split(",") if a and a not in have]
    return tuple(sorted(f"{r}:{','.join(a)}" if a else r for r, a in merged.items()))


class TokenCache:
    """Bearer tokens by (realm, service, identity, scopes), until they expire."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
            if hit is None:
                return None
            if hit[1] <= self._clock():
                del self._tokens[key]
                return None
            return hit[0]

    def put(self, key: tuple, token: str, lifetime: float) -> None:
        with self._lock:
            expires = self._clock() + max(lifetime - _EXPIRY_MARGIN, 1)
            self._tokens[key] = (token, expires)

    def drop(self, key: tuple) -> None:
        with self._lock:
            self._tokens.pop(key, None)


# tokens outlive one pull or push: later commands in the process reuse them
SHARED_TOKENS = TokenCache()


class Authenticator:
    """The auth state of one registry: its challenge, credentials and tokens."""

    def __init__(self, registry: str, credential: Callable[[], Credential | None],
                 tokens: TokenCache | None = None, user_agent: str = "dockyard"):
        self.registry = registry
        self._credential_source = credential
        self._credential: Credential | None = None
        self._credential_loaded = False
        self._lock = threading.Lock()
        self.tokens = tokens or SHARED_TOKENS
        self.challenge: Challenge | None = None
        self.user_agent = user_agent

    def learn(self, response: Response) -> None:
        """Remember the challenge of a 401 (from the /v2/ ping)."""
        chosen = self._choose(parse_challenges(response.headers.get_all("WWW-Authenticate")))
        if chosen is not None:
            self.challenge = chosen

    @property
    def credential(self) -> Credential | None:
        with self._lock:  # helpers are programs: ask them once
            if not self._credential_loaded:
                self._credential = self._credential_source()
                self._credential_loaded = True
            return self._credential

    def flow(self, request: Request, scopes: Iterable[str], repository: str | None = None) -> Flow:
        """Yields the requests to send; the answer to the last one is the result.

        With a known challenge the first request already carries credentials;
        a 401 teaches the challenge (or says the token went bad) and the
        request goes once more, authorised afresh.
        """
        scopes = merge_scopes(scopes)
        sent_auth = False
        if self.challenge is not None:
            header = yield from self._authorize(self.challenge, scopes, repository)
            if header is not None:
                request = request.with_header("Authorization", header)
                sent_auth = True
        response = yield request
        if response.status != 401:
            return
        chosen = self._choose(parse_challenges(response.headers.get_all("WWW-Authenticate")))
        if chosen is None:
            return
        known = self.challenge
        self.challenge = chosen
        if sent_auth and chosen.scheme == "basic":
            return  # the password itself was refused: asking again changes nothing
        if sent_auth and known is not None:
            # what we sent was refused (a stale or revoked token): start afresh
            self.tokens.drop(self._key(known, scopes))
        if chosen.params.get("scope"):
            scopes = merge_scopes(scopes + (chosen.params["scope"],))
        if sent_auth:
            self.tokens.drop(self._key(chosen, scopes))
        header = yield from self._authorize(chosen, scopes, repository)
        if header is None:
            return  # nothing to offer: the caller sees the 401
        yield request.with_header("Authorization", header)  # its answer is the caller's

    def _choose(self, challenges: list[Challenge]) -> Challenge | None:
        for scheme in ("bearer", "basic"):
            for c in challenges:
                if c.scheme == scheme and (scheme == "basic" or c.realm):
                    return c
        return None

    def _key(self, challenge: Challenge, scopes: tuple[str, ...]) -> tuple:
        # only realm and service name a token server; error= and scope= vary per answer
        cred = self.credential
        identity = cred.username if cred else ""
        return (challenge.realm, challenge.params.get("service", ""), identity, scopes)

    def _authorize(self, challenge: Challenge, scopes: tuple[str, ...],
                   repository: str | None) -> Generator[Request, Response, str | None]:
        if challenge.scheme == "basic":
            cred = self.credential
            if cred is None or not cred.username:
                return None
            return cred.basic()
        key = self._key(challenge, scopes)
        token = self.tokens.get(key)
        if token is None:
            token, lifetime = yield from self._fetch_token(challenge, scopes, repository)
            self.tokens.put(key, token, lifetime)
        return f"Bearer {token}"

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...],
                     repository: str | None) -> Generator[Request, Response, tuple[str, float]]:
        cred = self.credential
        service = challenge.params.get("service", "")
        headers = Headers({"User-Agent": self.user_agent})
        if cred is not None and cred.identity_token:
            # OAuth2 refresh-token grant, as Docker does for identity tokens
            form = [("grant_type", "refresh_token"), ("refresh_token", cred.identity_token),
                    ("service", service), ("client_id", "dockyard"), ("scope", " ".join(scopes))]
            request = Request("POST", challenge.realm,
                              headers.set("Content-Type", "application/x-www-form-urlencoded"),
                              body=urlencode(form).encode(), retry=True)
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            if cred is not None and cred.username:
                query.append(("account", cred.username))
                headers = headers.set("Authorization", cred.basic())
            sep = "&" if "?" in challenge.realm else "?"
            url = challenge.realm + (sep + urlencode(query) if query else "")
            request = Request("GET", url, headers)
        response = yield request
        body = response.read(_MAX_TOKEN_BODY)
        if response.status in (401, 403):
            raise Unauthorized(self.registry, repository, "authenticating with the token server",
                               response.status, response.reason,
                               error_detail(body) or "incorrect username or password"
                               if cred else "authentication required")
        if response.status != 200:
            raise RegistryHTTPError(self.registry, repository, "fetching a token",
                                    response.status, response.reason, error_detail(body),
                                    response.attempts)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, TypeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryHTTPError(self.registry, repository, "the token server's answer has no token",
                                    response.status, response.reason)
        return token, lifetime


def unauthorized(registry: str, repository: str | None, action: str, response: Response,
                 body: bytes = b"") -> Unauthorized:
    detail = error_detail(body) or "authentication required"
    return Unauthorized(registry, repository, action, response.status, response.reason, detail)

