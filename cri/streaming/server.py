"""The streaming server: an asyncio HTTP/1.1 server (h11) for exec, attach and port-forward.

The Exec/Attach/PortForward RPCs only mint a URL (`get_exec_url` and friends): the
request is validated, cached under a single-use token (request_cache.py) and the
client connects to

    http://<address>:<port>/exec/<token>         GET or POST
    http://<address>:<port>/attach/<token>
    http://<address>:<port>/portforward/<token>

Each connection carries one request; after routing it is upgraded:

    Upgrade: websocket ──┬── subprotocol SPDY/3.1+<p> ── SPDY session in binary messages ─┐
                         └── channel protocols ──────── remotecommand / portforward over WS │
    otherwise (SPDY/3.1, X-Stream-Protocol-Version) ─── SPDY session on the TCP stream ─────┤
                                                                                            ▼
                                       remotecommand.serve_spdy / portforward.serve_spdy

An unknown, used or expired token is a 404, as in the Kubernetes CRI streaming library.
The server never imports protobuf: requests are read through the structural types of
requests.py, which the CRI messages satisfy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection
from wsproto.utilities import RemoteProtocolError as WebSocketHandshakeError

from cri.streaming import portforward, remotecommand, spdy
from cri.streaming.channels import PORTFORWARD_PROTOCOLS, REMOTECOMMAND_PROTOCOLS
from cri.streaming.errors import StreamingUnavailableError
from cri.streaming.handshake import (
    HandshakeRejected,
    RequestHeaders,
    is_websocket_request,
    negotiate_spdy,
    negotiate_websocket,
    spdy_upgrade_response_headers,
)
from cri.streaming.request_cache import RequestCache
from cri.streaming.requests import (
    AttachRequestLike,
    AttachSpec,
    ExecRequestLike,
    ExecSpec,
    PortForwardRequestLike,
    PortForwardSpec,
    StreamSpec,
    attach_spec,
    exec_spec,
    port_forward_spec,
)
from cri.streaming.runtime import StreamingRuntime
from cri.streaming.session import SpdySession
from cri.streaming.transport import ByteTransport, TcpTransport
from cri.streaming.websocket import WebSocket, WebSocketByteTransport

log = logging.getLogger("crib.streaming")

# k8s.io/cri-streaming DefaultConfig.
STREAM_IDLE_TIMEOUT_S = 4 * 3600.0
STREAM_CREATION_TIMEOUT_S = 30.0
# The HTTP request itself (headers and any body) must arrive within this.
REQUEST_TIMEOUT_S = 30.0
MAX_REQUEST_BODY_BYTES = 64 * 1024
# On stop, how long sessions get to wind down after being cancelled.
STOP_GRACE_S = 2.0

# The SPDY-over-WebSocket tunnel (client-go tunneling_dialer.go): "SPDY/3.1+" + a
# Kubernetes SPDY protocol; we tunnel every SPDY protocol we serve.
TUNNEL_PREFIX = "SPDY/3.1+"

KINDS = {"exec": ExecSpec, "attach": AttachSpec, "portforward": PortForwardSpec}


class StreamingServer:
    """Serves exec, attach and port-forward sessions for URLs it minted itself."""

    def __init__(
        self,
        runtime: StreamingRuntime,
        address: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        stream_creation_timeout_s: float = STREAM_CREATION_TIMEOUT_S,
        stream_idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S,
    ) -> None:
        # The containers area replaces the runtime when it wires itself in.
        self.runtime = runtime
        self.address = address
        self.port = port
        self.stream_creation_timeout_s = stream_creation_timeout_s
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self._cache: RequestCache[StreamSpec] = RequestCache(clock)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.base_url = ""

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; `base_url` then holds the bound address (port 0 picks a free port)."""
        self._server = await asyncio.start_server(self._on_connection, self.address, self.port)
        host, port = self._server.sockets[0].getsockname()[:2]
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.base_url = f"http://{netloc}/"
        log.info("streaming server (exec, attach, port-forward) on %s", self.base_url)

    async def stop(self) -> None:
        """Stop listening and end every session (their runtimes are cancelled)."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                self._connections[task].close()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
            log.info("streaming server stopped")
        self.base_url = ""

    # -- minting URLs (what the Exec/Attach/PortForward RPC handlers call) ---------------------

    def _url(self, kind: str, spec: StreamSpec) -> str:
        if not self.base_url:
            raise StreamingUnavailableError("the streaming server is not running")
        return f"{self.base_url}{kind}/{self._cache.insert(spec)}"

    def get_exec_url(self, request: ExecRequestLike) -> str:
        """Validate an ExecRequest and return the URL that serves it (once, for a minute)."""
        return self._url("exec", exec_spec(request))

    def get_attach_url(self, request: AttachRequestLike) -> str:
        """Validate an AttachRequest and return the URL that serves it."""
        return self._url("attach", attach_spec(request))

    def get_port_forward_url(self, request: PortForwardRequestLike) -> str:
        """Validate a PortForwardRequest and return the URL that serves it."""
        return self._url("portforward", port_forward_spec(request))

    # -- connections ----------------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        try:
            await _Exchange(self, reader, writer, peer).serve()
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError) as err:
            log.debug("streaming connection from %s broke: %s", peer, err)
        except Exception as err:  # a bug: log it, drop this connection, keep serving
            log.error("streaming connection from %s failed", peer, exc_info=err)
        finally:
            del self._connections[task]
            writer.close()

    def consume(self, kind: str, token: str) -> StreamSpec | None:
        """The request behind `token` if it is of `kind`; the token is used up either way."""
        spec = self._cache.consume(token)
        return spec if isinstance(spec, KINDS[kind]) else None


class _Exchange:
    """One HTTP connection: read the request, route it, upgrade it, run the session."""

    def __init__(
        self,
        server: StreamingServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: object,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.http = h11.Connection(h11.SERVER)

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                request = await self._read_request()
        except TimeoutError:
            log.debug(
                "streaming connection from %s: no request within %.0f s",
                self.peer,
                REQUEST_TIMEOUT_S,
            )
            return
        except h11.RemoteProtocolError as err:
            await self._respond(err.error_status_hint, f"bad request: {err}")
            return
        if request is None:
            return
        target = request.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in KINDS:
            await self._respond(404, "404 page not found")
            return
        if request.method not in (b"GET", b"POST"):
            await self._respond(405, f"method {request.method.decode()} not allowed")
            return
        kind, token = parts
        spec = self.server.consume(kind, token)
        if spec is None:
            log.info("streaming %s from %s: unknown or expired token", kind, self.peer)
            await self._respond(404, "404 page not found")
            return
        headers: RequestHeaders = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in request.headers
        ]
        if is_websocket_request(headers):
            await self._serve_websocket(request, headers, kind, spec, urllib.parse.parse_qs(query))
        else:
            await self._serve_spdy(headers, kind, spec)

    async def _read_request(self) -> h11.Request | None:
        request: h11.Request | None = None
        body_bytes = 0
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                self.http.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > MAX_REQUEST_BODY_BYTES:
                    raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _respond(
        self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        body = (message + "\n").encode("utf-8")
        try:
            data = self.http.send(
                h11.Response(
                    status_code=status,
                    headers=[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                        *headers,
                    ],
                )
            )
            data = (data or b"") + (self.http.send(h11.Data(data=body)) or b"")
            data += self.http.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return  # the connection is past answering (e.g. the client sent garbage)
        self.writer.write(data)
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()

    # -- SPDY -----------------------------------------------------------------------------------

    async def _serve_spdy(self, headers: RequestHeaders, kind: str, spec: StreamSpec) -> None:
        protocols = (
            portforward.SPDY_PROTOCOLS if kind == "portforward" else remotecommand.SPDY_PROTOCOLS
        )
        try:
            protocol = negotiate_spdy(headers, protocols)
        except HandshakeRejected as rejection:
            log.info("streaming %s from %s: %s", kind, self.peer, rejection)
            await self._respond(rejection.status, rejection.message, rejection.headers)
            return
        response = h11.InformationalResponse(
            status_code=101,
            headers=spdy_upgrade_response_headers(protocol),
            reason=b"Switching Protocols",
        )
        try:
            self.writer.write(self.http.send(response) or b"")
        except h11.LocalProtocolError as err:
            await self._respond(400, f"unable to upgrade: {err}")
            return
        # Bytes the client sent after its request belong to the SPDY session.
        trailing, _ = self.http.trailing_data
        transport = TcpTransport(self.reader, self.writer, bytes(trailing))
        await self._run_spdy(transport, protocol, kind, spec, "SPDY")

    async def _run_spdy(
        self, transport: ByteTransport, protocol: str, kind: str, spec: StreamSpec, via: str
    ) -> None:
        name = f"{kind} {_subject(spec)} ({via} {protocol}, {self.peer})"
        log.info("streaming session: %s", name)
        session = SpdySession(
            transport, spdy.Role.SERVER, idle_timeout_s=self.server.stream_idle_timeout_s, name=name
        )
        session.start()
        timeout_s = self.server.stream_creation_timeout_s
        try:
            if isinstance(spec, PortForwardSpec):
                await portforward.serve_spdy(session, spec, self.server.runtime, timeout_s)
            else:
                await remotecommand.serve_spdy(
                    session, protocol, spec, self.server.runtime, timeout_s
                )
        finally:
            session.abort("session over")

    # -- WebSocket --------------------------------------------------------------------------------

    async def _serve_websocket(
        self,
        request: h11.Request,
        headers: RequestHeaders,
        kind: str,
        spec: StreamSpec,
        query: dict[str, list[str]],
    ) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(list(request.headers), request.target)
        except WebSocketHandshakeError as err:
            await self._respond(400, f"bad websocket handshake: {err}")
            return
        tunnelled = [
            TUNNEL_PREFIX + p
            for p in (
                portforward.SPDY_PROTOCOLS
                if kind == "portforward"
                else remotecommand.SPDY_PROTOCOLS
            )
        ]
        channel_protocols = (
            PORTFORWARD_PROTOCOLS if kind == "portforward" else REMOTECOMMAND_PROTOCOLS
        )
        try:
            protocol = negotiate_websocket(headers, [*channel_protocols, *tunnelled])
        except HandshakeRejected as rejection:
            log.info("streaming %s from %s: %s", kind, self.peer, rejection)
            await self._respond(rejection.status, rejection.message)
            return
        ports: Sequence[int] = ()
        if isinstance(spec, PortForwardSpec) and not protocol.startswith(TUNNEL_PREFIX):
            ports = spec.ports or portforward.parse_query_ports(query.get("port", [])) or ()
            if not ports:
                await self._respond(400, 'query parameter "port" is required')
                return
        self.writer.write(ws.send(AcceptConnection(subprotocol=protocol or None)))
        trailing, _ = self.http.trailing_data
        socket = WebSocket(ws, self.reader, self.writer, bytes(trailing))
        if protocol.startswith(TUNNEL_PREFIX):
            transport = WebSocketByteTransport(socket)
            await self._run_spdy(
                transport, protocol.removeprefix(TUNNEL_PREFIX), kind, spec, "WebSocket tunnel"
            )
            return
        name = f"{kind} {_subject(spec)} (WebSocket {protocol or '(unnamed)'}, {self.peer})"
        log.info("streaming session: %s", name)
        watchdog = asyncio.ensure_future(self._watch_idle(socket, name))
        try:
            if isinstance(spec, PortForwardSpec):
                await portforward.serve_websocket(
                    socket, PORTFORWARD_PROTOCOLS[protocol], spec, ports, self.server.runtime
                )
            else:
                await remotecommand.serve_websocket(
                    socket, REMOTECOMMAND_PROTOCOLS[protocol], spec, self.server.runtime
                )
        finally:
            watchdog.cancel()
            socket.abort()

    async def _watch_idle(self, socket: WebSocket, name: str) -> None:
        limit_s = self.server.stream_idle_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            idle_s = loop.time() - socket.last_activity
            if idle_s >= limit_s:
                log.info("%s: idle for %.0f s: closing", name, idle_s)
                socket.abort()
                return
            await asyncio.sleep(min(limit_s - idle_s + 0.01, 60.0))


def _subject(spec: StreamSpec) -> str:
    if isinstance(spec, PortForwardSpec):
        return f"sandbox {spec.sandbox_id}"
    return f"container {spec.container_id}"
