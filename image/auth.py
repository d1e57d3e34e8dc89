"""Registry authentication: credentials, WWW-Authenticate challenges, bearer tokens.

    client                     registry                      token server (realm)
      │ GET /v2/<name>/manifests/x ─►│
      │◄─ 401 WWW-Authenticate: Bearer realm=R,service=S,scope=repository:<name>:pull
      │ GET R?service=S&scope=…  (Basic user:password if any, else anonymous) ─────────►│
      │◄─────────────────────────────────────────── {"token"|"access_token", expires_in}│
      │ GET … Authorization: Bearer <token> ─►│
      │◄─ 200

(distribution docs/content/spec/auth/token.md). With an identity token (OAuth2 refresh
token, CRI `identity_token`) the token is obtained by POSTing grant_type=refresh_token to the
realm (auth/oauth.md). A `registry_token` is sent as the bearer token as it is. A registry
answering `WWW-Authenticate: Basic` gets the username and password directly.

Pure functions only: the HTTP exchange lives in `image.registry`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import time

from image.errors import InvalidCredentialsError, RegistryAuthError

# Tokens without expires_in are good for 60 s (token.md); refresh a little early.
DEFAULT_TOKEN_LIFETIME_S = 60
TOKEN_EXPIRY_MARGIN_S = 5


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What kubelet sent in a CRI AuthConfig, normalized.

    Secrets are never part of `repr` (CRI marks them debug_redact).
    """

    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    identity_token: str = dataclasses.field(default="", repr=False)
    registry_token: str = dataclasses.field(default="", repr=False)
    server_address: str = ""

    @property
    def empty(self) -> bool:
        """Whether there is nothing to authenticate with."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic_header(self) -> str:
        """The value of an `Authorization: Basic` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def credentials_from_cri(
    username: str = "",
    password: str = "",
    auth: str = "",
    server_address: str = "",
    identity_token: str = "",
    registry_token: str = "",
) -> Credentials | None:
    """Credentials from the fields of a CRI AuthConfig; None when all are empty.

    `auth` is base64 of `username:password` (the docker config.json form) and wins over
    separate username/password, as in containerd's ParseAuth.
    """
    if auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidCredentialsError("auth.auth: not base64 of user:password") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise InvalidCredentialsError("auth.auth: decoded value has no ':' separator")
        username, password = user, secret.strip("\x00")
    creds = Credentials(
        username=username,
        password=password,
        identity_token=identity_token,
        registry_token=registry_token,
        server_address=server_address,
    )
    return None if creds.empty else creds


@dataclasses.dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header (RFC 7235 / RFC 6750)."""

    scheme: str
    params: dict[str, str]


# auth-param = token "=" ( token / quoted-string ); a challenge starts with a scheme token.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN})\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?=\s|$|,)\s*,?")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header value into its challenges (scheme lower-cased)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if param and challenges:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params[param.group(1).lower()] = value
            pos = param.end()
            continue
        scheme = _SCHEME.match(header, pos)
        if not scheme:
            break
        challenges.append(Challenge(scheme.group(1).lower(), {}))
        pos = scheme.end()
    return challenges


@dataclasses.dataclass(frozen=True)
class Token:
    """A bearer token and when to stop using it (monotonic seconds)."""

    value: str = dataclasses.field(repr=False)
    expires_at_s: float

    def valid(self, now_s: float | None = None) -> bool:
        """Whether the token can still be sent."""
        return (now_s if now_s is not None else time.monotonic()) < self.expires_at_s


def parse_token_response(body: bytes, realm: str, now_s: float | None = None) -> Token:
    """The token from a token server's JSON answer (`token` or `access_token`)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryAuthError(f"token server {realm}: answer is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryAuthError(f"token server {realm}: answer is not a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryAuthError(f"token server {realm}: answer has no token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    start = now_s if now_s is not None else time.monotonic()
    return Token(value, start + max(1.0, float(lifetime) - TOKEN_EXPIRY_MARGIN_S))


def pull_scope(repository: str) -> str:
    """The token scope for pulling `repository` (path without the registry host)."""
    return f"repository:{repository}:pull"
