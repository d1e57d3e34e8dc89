"""A client for the OCI distribution API (pull side): endpoints, auth, retries, blobs.

Endpoints for a registry host come from the configuration, in order:

    registries.<host>.mirrors[0], mirrors[1], ...   then the host itself if upstream is true
    (docker.io is served at registry-1.docker.io)

A manifest is resolved from the first endpoint that has it; 404s, refusals and unreachable
endpoints move on to the next one, and the error names every endpoint tried. Blobs come from
the endpoint that resolved the manifest, then the others.

Each request is tried up to `attempts` times with exponential backoff on connection errors
and on 429/5xx answers. A blob download that breaks off resumes with a Range request where
the registry allows it. A read that sees no bytes for `progress_timeout_s` fails the pull
(PullStalledError) rather than any total timeout: large images on slow links must finish.

Credentials from the CRI request go only to the upstream host (and to a mirror on that same
host): never to other mirrors, and never across a redirect to another origin (distribution
spec, "API"), and foreign-layer `urls` are never fetched (CVE-2020-15157).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TypeVar

import httpx

from image import auth, manifest
from image.auth import Credentials, Token
from image.content import Ingest
from image.errors import (
    DigestMismatchError,
    ImageError,
    ManifestError,
    PullStalledError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
    RemoteNotFoundError,
)
from image.reference import DEFAULT_DOMAIN, Reference

log = logging.getLogger("crib.image.registry")
# httpx logs every request at INFO: crib logs pulls itself, per layer.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RegistryHost:
    """How to reach one registry host (the `registries.<host>` config entry)."""

    mirrors: tuple[str, ...] = ()
    upstream: bool = True
    insecure: bool = False


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One place a registry's content can be fetched from."""

    base_url: str  # scheme://host[:port][/prefix], no trailing slash
    mirror: bool
    insecure: bool  # skip TLS verification, and fall back to plain HTTP on a TLS error
    send_credentials: bool

    @property
    def netloc(self) -> str:
        """host[:port] of the endpoint."""
        return urllib.parse.urlsplit(self.base_url).netloc


def is_loopback(domain: str) -> bool:
    """Whether registry `domain` (host[:port]) is this machine: localhost, 127.0.0.0/8, ::1."""
    host = urllib.parse.urlsplit(f"//{domain}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoints_for(domain: str, hosts: Mapping[str, RegistryHost]) -> list[Endpoint]:
    """The endpoints for registry `domain`, in the order they are tried.

    A registry on this machine with no `registries` entry is insecure (HTTPS tried first,
    plain HTTP when TLS fails), as Docker treats 127.0.0.0/8: a local registry works
    without configuration, and nothing leaves the host in clear text. An entry, even one
    that only lists mirrors, decides for itself.
    """
    host = hosts.get(domain) or RegistryHost(insecure=is_loopback(domain))
    result = []
    for mirror in host.mirrors:
        url = mirror if "://" in mirror else f"https://{mirror}"
        parts = urllib.parse.urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        # Credentials are the registry's: a mirror only gets them when it is that same host.
        result.append(
            Endpoint(
                base, mirror=True, insecure=host.insecure, send_credentials=parts.netloc == domain
            )
        )
    if host.upstream:
        netloc = DOCKER_HUB_ENDPOINT if domain == DEFAULT_DOMAIN else domain
        result.append(
            Endpoint(
                f"https://{netloc}", mirror=False, insecure=host.insecure, send_credentials=True
            )
        )
    return result


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A manifest or index fetched for a reference."""

    endpoint: Endpoint
    digest: str
    media_type: str
    body: bytes


def _is_tls_error(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(err) or "TLS" in str(err)


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())


class RegistryClient:
    """Shared HTTP machinery for all pulls of one daemon (connection pools, token cache)."""

    def __init__(
        self,
        hosts: Mapping[str, RegistryHost],
        progress_timeout_s: float = 300.0,
        connect_timeout_s: float = 30.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
        user_agent: str = "crib",
        max_connections: int = 32,
    ) -> None:
        self.hosts = dict(hosts)
        self.progress_timeout_s = progress_timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        timeout = httpx.Timeout(
            connect=connect_timeout_s, read=progress_timeout_s, write=connect_timeout_s, pool=None
        )
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
        headers = {"User-Agent": user_agent, "Accept-Encoding": "identity"}
        # HTTPS is verified against the system CA store (ssl's default paths: /etc/ssl/certs).
        verified = ssl.create_default_context()
        self._clients = {
            True: httpx.AsyncClient(
                verify=verified, timeout=timeout, limits=limits, headers=headers, trust_env=True
            ),
            False: httpx.AsyncClient(
                verify=False, timeout=timeout, limits=limits, headers=headers, trust_env=True
            ),
        }
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._basic_hosts: set[str] = set()
        # https base URL of an insecure endpoint -> the plain-HTTP URL that worked instead.
        self._downgraded: dict[str, str] = {}

    async def aclose(self) -> None:
        """Close the connection pools."""
        for client in self._clients.values():
            await client.aclose()

    def endpoints(self, domain: str) -> list[Endpoint]:
        """The endpoints for `domain` under this client's configuration."""
        return endpoints_for(domain, self.hosts)

    def session(self, ref: Reference, credentials: Credentials | None) -> PullSession:
        """A session for pulling `ref` with `credentials`."""
        return PullSession(self, ref, credentials)

    # -- one HTTP exchange, with redirects, auth and retries ------------------------------------

    def _base(self, endpoint: Endpoint) -> str:
        return self._downgraded.get(endpoint.base_url, endpoint.base_url)

    async def _send_once(
        self,
        endpoint: Endpoint,
        url: str,
        headers: dict[str, str],
    ) -> httpx.Response:
        """GET `url`, following redirects by hand so Authorization never changes origin."""
        origin = urllib.parse.urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            same_origin = urllib.parse.urlsplit(url)[:2] == origin
            verify = not (endpoint.insecure and same_origin)
            send_headers = (
                headers
                if same_origin
                else {k: v for k, v in headers.items() if k.lower() != "authorization"}
            )
            client = self._clients[verify]
            request = client.build_request("GET", url, headers=send_headers)
            response = await client.send(request, stream=True)
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                await response.aclose()
                url = urllib.parse.urljoin(url, response.headers["location"])
                continue
            return response
        raise RegistryError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    async def request(
        self,
        endpoint: Endpoint,
        path: str,
        scope: str,
        credentials: Credentials | None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        """GET `path` on `endpoint` with auth, retries and redirects; a streaming response
        with a final status (the caller closes it). Raises `RegistryUnavailableError` once
        every attempt failed to connect or got a 5xx."""
        creds = credentials if endpoint.send_credentials else None
        last_error = ""
        attempt = 0
        while attempt < self.attempts:
            if attempt:
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
            attempt += 1
            base = self._base(endpoint)
            url = base + path
            if query:
                url += "?" + urllib.parse.urlencode(query)
            send_headers = dict(headers or {})
            send_headers.update(self._auth_headers(endpoint, scope, creds))
            try:
                response = await self._send_once(endpoint, url, send_headers)
                if response.status_code == 401:
                    challenge_header = response.headers.get_list("www-authenticate")
                    await response.aclose()
                    authorization = await self._answer_challenge(
                        endpoint, scope, creds, ", ".join(challenge_header)
                    )
                    send_headers["Authorization"] = authorization
                    response = await self._send_once(endpoint, url, send_headers)
            except httpx.TimeoutException as err:
                if isinstance(err, httpx.ReadTimeout):
                    raise PullStalledError(
                        f"GET {url}: no bytes received for {self.progress_timeout_s:g} s"
                    ) from None
                last_error = f"timed out: {_describe(err)}"
                continue
            except httpx.ConnectError as err:
                if endpoint.insecure and base.startswith("https://") and _is_tls_error(err):
                    # An insecure registry that does not speak TLS: plain HTTP, at once.
                    plain = "http://" + base.removeprefix("https://")
                    log.info("%s: TLS failed (%s), using %s", base, _describe(err), plain)
                    self._downgraded[endpoint.base_url] = plain
                    attempt -= 1  # not a failed attempt: retry at once over plain HTTP
                    continue
                last_error = _describe(err)
                continue
            except (httpx.TransportError, OSError) as err:
                last_error = _describe(err)
                continue
            if response.status_code in RETRY_STATUSES:
                last_error = f"HTTP {response.status_code}"
                await response.aclose()
                continue
            return response
        raise RegistryUnavailableError(
            f"{self._base(endpoint)}: unreachable after {self.attempts} attempts: {last_error}"
        )

    def _token_key(
        self, endpoint: Endpoint, scope: str, creds: Credentials | None
    ) -> tuple[str, ...]:
        who = ""
        if creds is not None:
            secret = f"{creds.username}\0{creds.password}\0{creds.identity_token}"
            who = hashlib.sha256(secret.encode()).hexdigest()
        return (endpoint.netloc, scope, who)

    def _auth_headers(
        self, endpoint: Endpoint, scope: str, creds: Credentials | None
    ) -> dict[str, str]:
        if creds is not None and creds.registry_token:
            return {"Authorization": f"Bearer {creds.registry_token}"}
        token = self._tokens.get(self._token_key(endpoint, scope, creds))
        if token is not None and token.valid():
            return {"Authorization": f"Bearer {token.value}"}
        if creds is not None and creds.username and endpoint.netloc in self._basic_hosts:
            return {"Authorization": creds.basic_header()}
        return {}

    async def _answer_challenge(
        self, endpoint: Endpoint, scope: str, creds: Credentials | None, header: str
    ) -> str:
        """The Authorization header that answers a 401's challenge."""
        challenges = {c.scheme: c for c in auth.parse_challenges(header)}
        bearer = challenges.get("bearer")
        if bearer is not None and "realm" in bearer.params:
            token = await self._fetch_token(endpoint, scope, creds, bearer.params)
            self._tokens[self._token_key(endpoint, scope, creds)] = token
            return f"Bearer {token.value}"
        if "basic" in challenges:
            if creds is None or not creds.username:
                raise RegistryAuthError(
                    f"{endpoint.base_url}: registry wants a username and password (none given)"
                )
            self._basic_hosts.add(endpoint.netloc)
            return creds.basic_header()
        raise RegistryAuthError(
            f"{endpoint.base_url}: 401 with no usable challenge ({header or 'none'})"
        )

    async def _fetch_token(
        self,
        endpoint: Endpoint,
        scope: str,
        creds: Credentials | None,
        params: dict[str, str],
    ) -> Token:
        realm = params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise RegistryAuthError(f"{endpoint.base_url}: bad token realm {realm!r}")
        service = params.get("service", "")
        scopes = [scope]
        if params.get("scope") and params["scope"] != scope:
            scopes.append(params["scope"])
        # Only the TLS setting of the registry's own host applies to its token server.
        same_host = urllib.parse.urlsplit(realm).netloc == endpoint.netloc
        client = self._clients[not (endpoint.insecure and same_host)]
        last_error = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
            try:
                if creds is not None and creds.identity_token:
                    # OAuth2 refresh-token grant (distribution auth/oauth.md).
                    form = {
                        "grant_type": "refresh_token",
                        "refresh_token": creds.identity_token,
                        "service": service,
                        "scope": " ".join(scopes),
                        "client_id": "crib",
                    }
                    response = await client.post(realm, data=form)
                else:
                    query: list[tuple[str, str | int | float | bool | None]] = []
                    if service:
                        query.append(("service", service))
                    query += [("scope", s) for s in scopes]
                    headers = {}
                    if creds is not None and creds.username:
                        headers["Authorization"] = creds.basic_header()
                    response = await client.get(realm, params=query, headers=headers)
            except httpx.TransportError as err:
                last_error = _describe(err)
                continue
            if response.status_code in RETRY_STATUSES:
                last_error = f"HTTP {response.status_code}"
                continue
            if response.status_code in (401, 403):
                raise RegistryAuthError(
                    f"token server {realm}: {response.status_code}: credentials refused for {scope}"
                )
            if response.status_code != 200:
                raise RegistryAuthError(
                    f"token server {realm}: unexpected status {response.status_code}"
                )
            return auth.parse_token_response(response.content, realm)
        raise RegistryUnavailableError(
            f"token server {realm}: unreachable after {self.attempts} attempts: {last_error}"
        )


def _status_error(response: httpx.Response, what: str, endpoint: Endpoint) -> ImageError:
    code = response.status_code
    if code == 404:
        return RemoteNotFoundError(f"{what}: not found at {endpoint.base_url}")
    if code in (401, 403):
        return RegistryAuthError(
            f"{what}: {endpoint.base_url} answered {code}: pull access denied"
            " (repository missing, or credentials needed)"
        )
    return RegistryError(f"{what}: {endpoint.base_url} answered unexpected status {code}")


class PullSession:
    """Everything fetched for one reference goes through one session."""

    def __init__(
        self, client: RegistryClient, ref: Reference, credentials: Credentials | None
    ) -> None:
        self.client = client
        self.ref = ref
        self.credentials = credentials
        self.scope = auth.pull_scope(ref.path)
        self.endpoints = client.endpoints(ref.domain)
        self.endpoint: Endpoint | None = None  # the one that resolved the reference

    def _query(self, endpoint: Endpoint) -> dict[str, str] | None:
        # A mirror learns which registry the request is for (distribution spec, "Registry
        # Proxying"; containerd sends the same `ns` parameter).
        return {"ns": self.ref.domain} if endpoint.mirror else None

    async def _each_endpoint(self, what: str, attempt: Callable[[Endpoint], Awaitable[T]]) -> T:
        """Run `attempt` on the endpoints in order (the resolving one first); the first
        success wins. When all fail, raise an error of the most telling kind naming each."""
        if not self.endpoints:
            raise RegistryError(f"{what}: registry {self.ref.domain} has no endpoint configured")
        ordered = list(self.endpoints)
        if self.endpoint is not None:
            ordered.remove(self.endpoint)
            ordered.insert(0, self.endpoint)
        errors: list[ImageError] = []
        for endpoint in ordered:
            try:
                return await attempt(endpoint)
            except PullStalledError:
                raise
            except ImageError as err:
                if len(ordered) > 1:
                    log.info("%s: %s failed: %s", what, endpoint.base_url, err)
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        # The last endpoint is the upstream, usually the most telling; but a NOT_FOUND only
        # wins when every endpoint said so.
        kinds = {type(e) for e in errors}
        chosen = errors[-1]
        if kinds == {RemoteNotFoundError}:
            chosen = errors[0]
        elif isinstance(chosen, RemoteNotFoundError):
            chosen = next(e for e in reversed(errors) if not isinstance(e, RemoteNotFoundError))
        message = "; ".join(str(e) for e in errors)
        raise type(chosen)(message)

    async def _get_document(
        self, endpoint: Endpoint, obj: str, what: str
    ) -> tuple[str, str, bytes]:
        path = f"/v2/{self.ref.path}/manifests/{obj}"
        response = await self.client.request(
            endpoint,
            path,
            self.scope,
            self.credentials,
            headers={"Accept": manifest.ACCEPT},
            query=self._query(endpoint),
        )
        try:
            if response.status_code != 200:
                raise _status_error(response, what, endpoint)
            body = await _read_limited(response, manifest.MANIFEST_MAX_BYTES, what)
        except httpx.TransportError as err:
            raise RegistryUnavailableError(f"{what}: {endpoint.base_url}: {err}") from None
        finally:
            await response.aclose()
        content_type = response.headers.get("content-type", "")
        digest = manifest.digest_of(body)
        if obj.startswith("sha") and ":" in obj:
            algorithm = obj.partition(":")[0]
            actual = manifest.digest_of(body, algorithm)
            if actual != obj:
                raise DigestMismatchError(
                    f"{what}: manifest from {endpoint.base_url} has digest {actual}"
                )
            digest = obj
        else:
            header = response.headers.get("docker-content-digest", "")
            if header.startswith("sha256:") and header != digest:
                raise DigestMismatchError(
                    f"{what}: Docker-Content-Digest {header} differs from the body's {digest}"
                )
        return content_type, digest, body

    async def resolve(self) -> Resolved:
        """Fetch the manifest or index the reference names (tag or digest)."""
        what = str(self.ref)

        async def attempt(endpoint: Endpoint) -> Resolved:
            content_type, digest, body = await self._get_document(endpoint, self.ref.object, what)
            return Resolved(endpoint, digest, content_type, body)

        resolved = await self._each_endpoint(what, attempt)
        self.endpoint = resolved.endpoint
        return resolved

    async def fetch_manifest(self, digest: str) -> tuple[str, bytes]:
        """(Content-Type, body) of the manifest `digest`, verified."""
        what = self.ref.with_digest(digest)

        async def attempt(endpoint: Endpoint) -> tuple[str, bytes]:
            content_type, _, body = await self._get_document(endpoint, digest, what)
            return content_type, body

        return await self._each_endpoint(what, attempt)

    async def fetch_blob_bytes(self, desc: manifest.Descriptor, limit: int) -> bytes:
        """A small blob (an image config) into memory, verified against `desc`."""
        what = f"{self.ref.name}: blob {desc.digest}"
        if desc.size > limit:
            raise ManifestError(f"{what}: {desc.size} bytes is more than the {limit} allowed")

        async def attempt(endpoint: Endpoint) -> bytes:
            response = await self.client.request(
                endpoint,
                f"/v2/{self.ref.path}/blobs/{desc.digest}",
                self.scope,
                self.credentials,
                query=self._query(endpoint),
            )
            try:
                if response.status_code != 200:
                    raise _status_error(response, what, endpoint)
                body = await _read_limited(response, desc.size + 1, what)
            except httpx.TransportError as err:
                raise RegistryUnavailableError(f"{what}: {endpoint.base_url}: {err}") from None
            finally:
                await response.aclose()
            algorithm = desc.digest.partition(":")[0]
            actual = manifest.digest_of(body, algorithm)
            if len(body) != desc.size or actual != desc.digest:
                raise DigestMismatchError(
                    f"{what}: got {len(body)} bytes with digest {actual}, descriptor says"
                    f" {desc.size} bytes"
                )
            return body

        return await self._each_endpoint(what, attempt)

    async def fetch_blob(
        self,
        desc: manifest.Descriptor,
        ingest: Ingest,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Stream blob `desc` into `ingest`, resuming with Range after a broken
        connection, and verify digest and size (the caller commits)."""
        what = f"{self.ref.name}: blob {desc.digest}"

        async def attempt(endpoint: Endpoint) -> None:
            ingest.reset()
            broken = 0
            while True:
                headers = {"Range": f"bytes={ingest.size}-"} if ingest.size else {}
                response = await self.client.request(
                    endpoint,
                    f"/v2/{self.ref.path}/blobs/{desc.digest}",
                    self.scope,
                    self.credentials,
                    headers=headers,
                    query=self._query(endpoint),
                )
                try:
                    if response.status_code == 200 and ingest.size:
                        ingest.reset()  # the server ignored Range: take it from the start
                    elif response.status_code not in (200, 206) or (
                        response.status_code == 206 and not ingest.size
                    ):
                        raise _status_error(response, what, endpoint)
                    async for chunk in _chunks(response):
                        ingest.write(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
                except httpx.ReadTimeout:
                    raise PullStalledError(
                        f"{what}: no bytes received for {self.client.progress_timeout_s:g} s"
                    ) from None
                except httpx.TransportError as err:
                    broken += 1
                    if broken >= self.client.attempts:
                        raise RegistryUnavailableError(
                            f"{what}: download from {endpoint.base_url} broke off"
                            f" {broken} times: {_describe(err)}"
                        ) from None
                    log.info(
                        "%s: connection broke at %d bytes (%s), resuming",
                        what,
                        ingest.size,
                        _describe(err),
                    )
                    await asyncio.sleep(self.client.backoff_s * (2 ** (broken - 1)))
                    continue
                finally:
                    await response.aclose()
                ingest.verify()
                return

        await self._each_endpoint(what, attempt)


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in response.aiter_raw():
        yield chunk


async def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    async for chunk in response.aiter_raw():
        total += len(chunk)
        if total > limit:
            raise ManifestError(f"{what}: document larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
