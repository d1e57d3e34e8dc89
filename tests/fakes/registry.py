"""A scriptable in-process registry (distribution API, pull side) for unit tests.

It serves what `tests/imagebuild.py` builds, records every request, and misbehaves on demand:
bearer or basic auth, blob redirects to another origin, 5xx answers, connections that break
mid-blob, stalls, Range ignored, wrong Content-Type. Runs on 127.0.0.1, a free port, in a
thread; `with FakeRegistry() as reg:` stops it.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

from tests import imagebuild as ib

TOKEN = "tok-123"


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeRegistry:
    def __init__(self, auth: str = "", users: dict[str, str] | None = None) -> None:
        self.auth = auth  # "", "basic" or "bearer"
        self.users = users or {}
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[Seen] = []
        self.fail_statuses: list[int] = []  # answered (in order) before serving anything
        self.break_blob_after: int | None = None  # close mid-blob once, after N bytes
        self.stall_blob_s = 0.0
        self.ignore_range = False
        self.redirect_blobs_to: FakeRegistry | None = None
        self.content_type_override: str | None = None
        self.token_requests: list[dict[str, list[str]]] = []
        self.lock = threading.Lock()
        handler = self._handler_class()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- content ------------------------------------------------------------------------------

    def add_image(self, repo: str, tag: str | None, image: ib.Image) -> str:
        for layer in image.layers:
            self.blobs[layer.digest] = layer.blob
        self.blobs[image.image_id] = image.config_bytes
        body = image.manifest_bytes
        digest = ib.sha256(body)
        self.manifests[(repo, digest)] = (image.manifest_type, body)
        if tag:
            self.manifests[(repo, tag)] = (image.manifest_type, body)
        return digest

    def add_index(self, repo: str, tag: str, images: list[ib.Image], media: str = "oci") -> str:
        for image in images:
            self.add_image(repo, None, image)
        body, media_type = ib.index_bytes(images, media)
        digest = ib.sha256(body)
        self.manifests[(repo, tag)] = (media_type, body)
        self.manifests[(repo, digest)] = (media_type, body)
        return digest

    def blob_gets(self, digest: str) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and r.path.endswith(digest))

    # -- HTTP ---------------------------------------------------------------------------------

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_POST(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                registry.requests.append(Seen(self.command, parsed.path, dict(self.headers)))
                if parsed.path == "/token":
                    return self._token(parsed)
                if parsed.path.startswith("/blobstore/"):
                    return self._blob(parsed.path.rsplit("/", 1)[1])
                with registry.lock:
                    fail = registry.fail_statuses.pop(0) if registry.fail_statuses else None
                if fail is not None:
                    return self._send(fail, b"{}")
                if not self._authorized():
                    return None
                m = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", parsed.path)
                if parsed.path == "/v2/" or m is None:
                    return self._send(200 if parsed.path == "/v2/" else 404, b"{}")
                repo, kind, ref = m.groups()
                if kind == "manifests":
                    found = registry.manifests.get((repo, ref))
                    if found is None:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                    media_type, body = found
                    content_type = registry.content_type_override or media_type
                    return self._send(
                        200,
                        body,
                        {"Content-Type": content_type, "Docker-Content-Digest": ib.sha256(body)},
                    )
                if registry.redirect_blobs_to is not None:
                    target = f"{registry.redirect_blobs_to.url}/blobstore/{ref}"
                    return self._send(307, b"", {"Location": target})
                return self._blob(ref)

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if registry.auth == "basic":
                    for user, password in registry.users.items():
                        want = base64.b64encode(f"{user}:{password}".encode()).decode()
                        if header == f"Basic {want}":
                            return True
                    self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
                    return False
                if registry.auth == "bearer":
                    if header == f"Bearer {TOKEN}":
                        return True
                    challenge = (
                        f'Bearer realm="{registry.url}/token",service="fake-registry",'
                        'scope="repository:x:pull"'
                    )
                    self._send(401, b"{}", {"WWW-Authenticate": challenge})
                    return False
                return True

            def _token(self, parsed: urllib.parse.SplitResult) -> None:
                query = urllib.parse.parse_qs(parsed.query)
                if self.command == "POST":
                    length = int(self.headers.get("Content-Length", "0"))
                    query = urllib.parse.parse_qs(self.rfile.read(length).decode())
                registry.token_requests.append(query)
                if registry.users:
                    header = self.headers.get("Authorization", "")
                    ok = any(
                        header == "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()
                        for u, p in registry.users.items()
                    ) or query.get("refresh_token") == ["refresh-me"]
                    if not ok:
                        return self._send(401, b"{}")
                self._send(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode())

            def _blob(self, digest: str) -> None:
                data = registry.blobs.get(digest)
                if data is None:
                    return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                start = 0
                rng = self.headers.get("Range")
                if rng and not registry.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                status = 206 if start else 200
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.command == "HEAD":
                    return
                if registry.stall_blob_s:
                    self.wfile.write(body[:10])
                    self.wfile.flush()
                    time.sleep(registry.stall_blob_s)
                    return
                with registry.lock:
                    cut = registry.break_blob_after
                    registry.break_blob_after = None
                if cut is not None and cut < len(body):
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        return Handler


def iter_requests(reg: FakeRegistry, prefix: str) -> Iterator[Seen]:
    return (r for r in reg.requests if r.path.startswith(prefix))
