"""The registry client against an in-process fake registry: auth, mirrors, retries, blobs."""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from image import reference
from image.auth import Credentials
from image.content import ContentStore
from image.errors import (
    DigestMismatchError,
    ManifestError,
    PullStalledError,
    RegistryAuthError,
    RegistryUnavailableError,
    RemoteNotFoundError,
)
from image.manifest import Descriptor
from image.registry import RegistryClient, RegistryHost, endpoints_for
from tests import imagebuild as ib
from tests.fakes.registry import TOKEN, FakeRegistry
from tests.registry import free_port

T = TypeVar("T")
IMAGE = ib.Image([ib.Layer([ib.file("hello", ib.random_bytes(300_000, 5))], "gzip")])
LAYER = IMAGE.layers[0]


def run(
    hosts: dict[str, RegistryHost], body: Callable[[RegistryClient], Awaitable[T]], **kw: float
) -> T:
    async def main() -> T:
        client = RegistryClient(hosts, backoff_s=0.01, attempts=3, **kw)  # type: ignore[arg-type]
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def insecure(reg: FakeRegistry) -> dict[str, RegistryHost]:
    return {reg.host: RegistryHost(insecure=True)}


def fetch_layer(
    client: RegistryClient, tmp_path: pathlib.Path, ref: str, creds: Credentials | None = None
) -> Awaitable[bytes]:
    async def go() -> bytes:
        session = client.session(reference.parse(ref), creds)
        await session.resolve()
        store = ContentStore(str(tmp_path / "content"))
        store.prepare()
        ingest = store.ingest(LAYER.digest, len(LAYER.blob))
        try:
            await session.fetch_blob(Descriptor("x", LAYER.digest, len(LAYER.blob)), ingest)
            return pathlib.Path(ingest.commit()).read_bytes()
        except BaseException:
            ingest.abort()
            raise

    return go()


def test_endpoints_order_and_docker_hub() -> None:
    hosts = {"docker.io": RegistryHost(mirrors=("mirror.example:5000", "http://m2/prefix/"))}
    endpoints = endpoints_for("docker.io", hosts)
    assert [e.base_url for e in endpoints] == [
        "https://mirror.example:5000",
        "http://m2/prefix",
        "https://registry-1.docker.io",
    ]
    assert [e.send_credentials for e in endpoints] == [False, False, True]
    no_upstream = {"q.io": RegistryHost(mirrors=("http://m",), upstream=False)}
    assert [e.base_url for e in endpoints_for("q.io", no_upstream)] == ["http://m"]
    assert [e.base_url for e in endpoints_for("other.io", {})] == ["https://other.io"]


@pytest.mark.parametrize(
    ("domain", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("registry.localhost", True),
        ("[::1]:5000", True),
        ("10.0.0.5:5000", False),
        ("registry.example:5000", False),
        ("localhost.example", False),
        ("docker.io", False),
    ],
)
def test_unconfigured_loopback_registries_are_insecure(domain: str, loopback: bool) -> None:
    (endpoint,) = endpoints_for(domain, {})
    assert endpoint.insecure is loopback
    # A registries entry decides for itself, loopback or not.
    configured = {domain: RegistryHost(insecure=False)}
    assert [e.insecure for e in endpoints_for(domain, configured)] == [False]


def test_anonymous_pull_over_insecure_falls_back_to_http(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        digest = reg.add_image("app", "v1", IMAGE)

        async def body(client: RegistryClient) -> tuple[str, bytes]:
            session = client.session(reference.parse(f"{reg.host}/app:v1"), None)
            resolved = await session.resolve()
            return resolved.digest, await fetch_layer(client, tmp_path, f"{reg.host}/app:v1")

        resolved_digest, blob = run(insecure(reg), body)
        assert resolved_digest == digest
        assert blob == LAYER.blob


def test_bearer_token_with_basic_credentials_cached(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "pw"}) as reg:
        reg.add_image("team/app", "v1", IMAGE)
        creds = Credentials(username="alice", password="pw")
        blob = run(
            insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/team/app:v1", creds)
        )
        assert blob == LAYER.blob
        assert len(reg.token_requests) == 1  # one token for the manifest and the blob
        query = reg.token_requests[0]
        assert query["service"] == ["fake-registry"]
        assert "repository:team/app:pull" in query["scope"]
        token_get = next(r for r in reg.requests if r.path == "/token")
        assert token_get.headers["Authorization"].startswith("Basic ")


def test_bearer_wrong_password_is_auth_error(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "pw"}) as reg:
        reg.add_image("app", "v1", IMAGE)
        creds = Credentials(username="alice", password="wrong")
        with pytest.raises(RegistryAuthError, match="credentials refused"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", creds))


def test_anonymous_bearer(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="bearer") as reg:
        reg.add_image("app", "v1", IMAGE)
        assert run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1")) == (
            LAYER.blob
        )
        token_get = next(r for r in reg.requests if r.path == "/token")
        assert "Authorization" not in token_get.headers


def test_identity_token_uses_oauth2_refresh_grant(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "pw"}) as reg:
        reg.add_image("app", "v1", IMAGE)
        creds = Credentials(identity_token="refresh-me")
        run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", creds))
        (query,) = reg.token_requests
        assert query["grant_type"] == ["refresh_token"]
        assert query["refresh_token"] == ["refresh-me"]
        assert [r.method for r in reg.requests if r.path == "/token"] == ["POST"]


def test_registry_token_sent_as_bearer(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="bearer") as reg:
        reg.add_image("app", "v1", IMAGE)
        creds = Credentials(registry_token=TOKEN)
        run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", creds))
        assert reg.token_requests == []


def test_basic_auth(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as reg:
        reg.add_image("app", "v1", IMAGE)
        creds = Credentials(username="bob", password="pw")
        assert (
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", creds))
            == LAYER.blob
        )
        with pytest.raises(RegistryAuthError, match="wants a username and password"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1"))
        bad = Credentials(username="bob", password="no")
        with pytest.raises(RegistryAuthError, match="pull access denied"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", bad))


def test_blob_redirect_does_not_forward_credentials(tmp_path: pathlib.Path) -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as reg, FakeRegistry() as cdn:
        reg.add_image("app", "v1", IMAGE)
        cdn.blobs.update(reg.blobs)
        reg.redirect_blobs_to = cdn
        creds = Credentials(username="bob", password="pw")
        blob = run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1", creds))
        assert blob == LAYER.blob
        assert cdn.requests
        assert all("Authorization" not in r.headers for r in cdn.requests)


def test_5xx_retried_then_succeeds(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.fail_statuses = [503, 500]
        assert run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1")) == (
            LAYER.blob
        )


def test_5xx_forever_is_unavailable_after_bounded_attempts(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.fail_statuses = [503] * 100
        with pytest.raises(RegistryUnavailableError, match="after 3 attempts: HTTP 503"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1"))
        assert len(reg.requests) == 3  # the TLS try before plain HTTP never reached a handler


def test_connection_refused_is_unavailable() -> None:
    host = f"127.0.0.1:{free_port()}"

    async def body(client: RegistryClient) -> None:
        await client.session(reference.parse(f"{host}/app:v1"), None).resolve()

    with pytest.raises(RegistryUnavailableError, match="unreachable after 3 attempts"):
        run({host: RegistryHost(mirrors=(f"http://{host}",), upstream=False)}, body)


def test_broken_download_resumes_with_range(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.break_blob_after = 100_000
        assert run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1")) == (
            LAYER.blob
        )
        ranges = [r.headers.get("Range") for r in reg.requests if LAYER.digest in r.path]
        assert ranges[-1] is not None
        assert ranges[-1].startswith("bytes=")
        assert ranges[-1] != "bytes=0-"


def test_broken_download_restarts_when_range_ignored(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.break_blob_after = 100_000
        reg.ignore_range = True
        assert run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1")) == (
            LAYER.blob
        )


def test_stall_is_deadline_error(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.stall_blob_s = 3
        with pytest.raises(PullStalledError, match=r"no bytes received for 0.3 s"):
            run(
                insecure(reg),
                lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1"),
                progress_timeout_s=0.3,
            )


def test_mirrors_in_order_then_upstream_without_credentials(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as empty, FakeRegistry() as mirror, FakeRegistry() as upstream:
        mirror.add_image("library/busybox", "1", IMAGE)
        hosts = {"docker.io": RegistryHost(mirrors=(empty.url, mirror.url))}
        creds = Credentials(username="u", password="p")
        blob = run(hosts, lambda c: fetch_layer(c, tmp_path, "busybox:1", creds))
        assert blob == LAYER.blob
        assert [r.path for r in empty.requests] == ["/v2/library/busybox/manifests/1"]
        assert all("Authorization" not in r.headers for r in mirror.requests + empty.requests)
        assert upstream.requests == []


def test_all_endpoints_not_found_names_each(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as one, FakeRegistry() as two:
        hosts = {"quay.io": RegistryHost(mirrors=(one.url, two.url), upstream=False)}

        async def body(client: RegistryClient) -> None:
            await client.session(reference.parse("quay.io/x/y:1"), None).resolve()

        with pytest.raises(RemoteNotFoundError) as err:
            run(hosts, body)
        assert one.url in str(err.value)
        assert two.url in str(err.value)


def test_unreachable_mirror_falls_back(tmp_path: pathlib.Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeRegistry() as good:
        good.add_image("library/busybox", "1", IMAGE)
        hosts = {"docker.io": RegistryHost(mirrors=(dead, good.url), upstream=False)}
        assert run(hosts, lambda c: fetch_layer(c, tmp_path, "busybox:1")) == LAYER.blob


def test_corrupt_blob_is_digest_error(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.blobs[LAYER.digest] = b"x" + LAYER.blob[1:]
        with pytest.raises(DigestMismatchError, match="content has digest"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1"))
        assert list((tmp_path / "content/ingest").iterdir()) == []


def test_oversized_blob_is_digest_error(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.blobs[LAYER.digest] = LAYER.blob + b"extra"
        with pytest.raises(DigestMismatchError, match="more than"):
            run(insecure(reg), lambda c: fetch_layer(c, tmp_path, f"{reg.host}/app:v1"))


def test_manifest_by_digest_verified() -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        wrong = "sha256:" + "c" * 64
        reg.manifests[("app", wrong)] = (ib.OCI_MANIFEST, IMAGE.manifest_bytes)

        async def body(client: RegistryClient) -> None:
            await client.session(reference.parse(f"{reg.host}/app@{wrong}"), None).resolve()

        with pytest.raises(DigestMismatchError, match="manifest from"):
            run(insecure(reg), body)


def test_content_type_confusion_refused() -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", IMAGE)
        reg.content_type_override = ib.OCI_INDEX

        async def body(client: RegistryClient) -> None:
            from image import manifest

            resolved = await client.session(reference.parse(f"{reg.host}/app:v1"), None).resolve()
            manifest.parse_document(resolved.body, resolved.media_type, "x")

        with pytest.raises(ManifestError, match="differs from Content-Type"):
            run(insecure(reg), body)


def test_basic_header_format() -> None:
    creds = Credentials(username="a", password="b")
    assert creds.basic_header() == "Basic " + base64.b64encode(b"a:b").decode()
