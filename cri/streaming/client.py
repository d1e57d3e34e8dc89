"""Clients of the streaming protocols, behaving as client-go does (tests, benchmarks, probes).

- `spdy_connect`: the SPDY upgrade (POST, one X-Stream-Protocol-Version line per
  protocol, v5 to v1 in that order as client-go's SPDY executor offers them);
- `websocket_connect`: the WebSocket upgrade (GET, subprotocols in preference order);
- `RemoteCommand`: exec/attach over SPDY (streams created one after the other, each
  waiting for its SYN_REPLY: error, stdin, stdout, stderr, resize) or over WebSocket
  channels (v5 half-closes stdin with the CLOSE signal);
- `PortForwarder`: port-forward over SPDY, over the SPDY-in-WebSocket tunnel
  (`SPDY/3.1+portforward.k8s.io`, as `crictl port-forward --transport websocket`), or
  one connection per port over WebSocket channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import struct
import urllib.parse
from collections.abc import Sequence

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from cri.streaming import spdy
from cri.streaming.channels import (
    PORTFORWARD_PROTOCOLS,
    REMOTECOMMAND_PROTOCOLS,
    Channel,
    ChannelData,
    ChannelProtocol,
    decode_message,
    encode_close,
    encode_message,
)
from cri.streaming.runtime import StreamClosedError
from cri.streaming.session import SpdySession, SpdyStream
from cri.streaming.transport import ByteTransport, TcpTransport
from cri.streaming.websocket import WebSocket, WebSocketByteTransport

# What client-go's SPDY executor offers, in its order (remotecommand/spdy.go).
SPDY_REMOTECOMMAND_PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"


class UpgradeFailedError(ConnectionError):
    """The server answered the upgrade with an HTTP error."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"unable to upgrade connection: {status}: {body.strip()}")
        self.status = status
        self.body = body


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "ws") or parts.hostname is None:
        raise ValueError(f"unsupported streaming URL {url!r}")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return reader, writer, parts.netloc, target


async def spdy_upgrade(
    url: str,
    protocols: Sequence[str] = SPDY_REMOTECOMMAND_PROTOCOLS,
    method: str = "POST",
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, bytes]:
    """The HTTP half of the SPDY upgrade: the connection, the chosen protocol, and bytes
    already read past the 101 response."""
    reader, writer, host, target = await _open(url)
    http = h11.Connection(h11.CLIENT)
    headers = [
        ("Host", host),
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        *(("X-Stream-Protocol-Version", p) for p in protocols),
        ("Content-Length", "0"),
    ]
    writer.write(http.send(h11.Request(method=method, target=target, headers=headers)) or b"")
    writer.write(http.send(h11.EndOfMessage()) or b"")
    status, response_headers, body = await _read_response(http, reader)
    if status != 101:
        writer.close()
        raise UpgradeFailedError(status, body)
    values = dict(response_headers)
    # client-go's checks (spdy.SpdyRoundTripper.NewConnection).
    connection = values.get("connection", "").lower()
    if "upgrade" not in connection or "spdy/3.1" not in values.get("upgrade", "").lower():
        writer.close()
        raise UpgradeFailedError(status, "missing upgrade headers in the response")
    trailing, _ = http.trailing_data
    return reader, writer, values.get("x-stream-protocol-version", ""), bytes(trailing)


async def spdy_connect(
    url: str,
    protocols: Sequence[str] = SPDY_REMOTECOMMAND_PROTOCOLS,
    method: str = "POST",
) -> tuple[SpdySession, str]:
    """Upgrade to SPDY/3.1; returns the running client session and the chosen protocol."""
    reader, writer, protocol, trailing = await spdy_upgrade(url, protocols, method)
    session = SpdySession(TcpTransport(reader, writer, trailing), spdy.Role.CLIENT)
    session.start()
    return session, protocol


async def _read_response(
    http: h11.Connection, reader: asyncio.StreamReader
) -> tuple[int, list[tuple[str, str]], str]:
    status = 0
    headers: list[tuple[str, str]] = []
    body = b""
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(await reader.read(65536))
        elif isinstance(event, h11.InformationalResponse | h11.Response):
            status = event.status_code
            headers = [(n.decode().lower(), v.decode()) for n, v in event.headers]
            if status == 101:
                return status, headers, ""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
            return status, headers, body.decode("utf-8", "replace")


async def websocket_connect(url: str, protocols: Sequence[str]) -> tuple[WebSocket, str]:
    """Open a WebSocket offering `protocols`; returns it and the chosen one ("" if none)."""
    reader, writer, host, target = await _open(url)
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host=host, target=target, subprotocols=list(protocols))))
    body = b""
    rejected_status = 0
    while True:
        data = await reader.read(65536)
        ws.receive_data(data or None)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return WebSocket(ws, reader, writer), event.subprotocol or ""
            if isinstance(event, RejectConnection):
                rejected_status = event.status_code
                if not event.has_body:
                    writer.close()
                    raise UpgradeFailedError(rejected_status, "")
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    writer.close()
                    raise UpgradeFailedError(rejected_status, body.decode("utf-8", "replace"))
        if not data:
            writer.close()
            raise UpgradeFailedError(rejected_status, "connection closed during the handshake")


# --- remote command --------------------------------------------------------------------------


@dataclasses.dataclass
class CommandResult:
    """What a finished exec/attach reported."""

    stdout: bytes
    stderr: bytes
    # The raw error-stream payload and, for v4+, the decoded metav1.Status.
    error: bytes
    status: dict[str, object] | None

    @property
    def exit_code(self) -> int | None:
        """The exit code as client-go derives it: 0 on Success, the ExitCode cause on
        NonZeroExitCode, None for any other failure."""
        if self.status is None:
            return 0 if not self.error else None
        if self.status.get("status") == "Success":
            return 0
        if self.status.get("reason") == "NonZeroExitCode":
            details = self.status.get("details")
            causes = details.get("causes", []) if isinstance(details, dict) else []
            for cause in causes:
                if cause.get("reason") == "ExitCode":
                    return int(cause["message"])
        return None


class RemoteCommand:
    """A client's exec or attach session (SPDY or WebSocket)."""

    def __init__(self) -> None:
        self.protocol = ""
        self._session: SpdySession | None = None
        self._streams: dict[str, SpdyStream] = {}
        self._socket: WebSocket | None = None
        self._ws_protocol: ChannelProtocol | None = None
        self._channels: dict[int, asyncio.Queue[bytes | None]] = {}
        self._demux: asyncio.Task[None] | None = None
        self.json_status = False

    # -- connecting -----------------------------------------------------------------------------

    @classmethod
    async def spdy(
        cls,
        url: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        tty: bool = False,
        protocols: Sequence[str] = SPDY_REMOTECOMMAND_PROTOCOLS,
        tunnel: bool = False,
    ) -> RemoteCommand:
        """Connect over SPDY (or over the SPDY-in-WebSocket tunnel) and create the streams."""
        self = cls()
        if tunnel:
            socket, chosen = await websocket_connect(url, [TUNNEL_PREFIX + p for p in protocols])
            self._session = SpdySession(WebSocketByteTransport(socket), spdy.Role.CLIENT)
            self._session.start()
            self.protocol = chosen.removeprefix(TUNNEL_PREFIX)
        else:
            self._session, self.protocol = await spdy_connect(url, protocols)
        version = self.protocol
        self.json_status = version in ("v4.channel.k8s.io", "v5.channel.k8s.io")
        kinds = ["error"]
        kinds += ["stdin"] if stdin else []
        kinds += ["stdout"] if stdout else []
        kinds += ["stderr"] if stderr and not tty else []
        if tty and version not in ("v2.channel.k8s.io", "channel.k8s.io"):
            kinds.append("resize")
        for kind in kinds:
            self._streams[kind] = await self._session.open_stream({"streamtype": kind})
        return self

    @classmethod
    async def websocket(
        cls,
        url: str,
        *,
        protocols: Sequence[str] = ("v5.channel.k8s.io",),
    ) -> RemoteCommand:
        """Connect over WebSocket channels (crictl --transport websocket offers only v5)."""
        self = cls()
        self._socket, self.protocol = await websocket_connect(url, protocols)
        self._ws_protocol = REMOTECOMMAND_PROTOCOLS[self.protocol]
        self.json_status = self._ws_protocol.json_status
        self._channels = {
            c: asyncio.Queue() for c in (Channel.STDOUT, Channel.STDERR, Channel.ERROR)
        }
        self._demux = asyncio.ensure_future(self._read_channels())
        return self

    async def _read_channels(self) -> None:
        assert self._socket is not None
        assert self._ws_protocol is not None
        try:
            while (message := await self._socket.receive()) is not None:
                decoded = decode_message(self._ws_protocol, message)
                if (
                    isinstance(decoded, ChannelData)
                    and decoded.channel in self._channels
                    and decoded.data
                ):
                    self._channels[decoded.channel].put_nowait(decoded.data)
        finally:
            for queue in self._channels.values():
                queue.put_nowait(None)

    # -- using the session -----------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        """Send bytes to the process's stdin."""
        if self._socket is not None:
            assert self._ws_protocol is not None
            await self._socket.send(encode_message(self._ws_protocol, Channel.STDIN, data))
        else:
            await self._streams["stdin"].write(data)

    async def close_stdin(self) -> None:
        """Half-close stdin: SPDY FIN, or the v5 CLOSE signal."""
        if self._socket is not None:
            assert self._ws_protocol is not None
            if not self._ws_protocol.close_signal:
                raise ValueError(f"{self.protocol or 'this protocol'} cannot half-close stdin")
            await self._socket.send(encode_close(Channel.STDIN))
        else:
            await self._streams["stdin"].close()

    async def resize(self, width: int, height: int) -> None:
        """Report a terminal size (JSON, newline-terminated as Go's json.Encoder writes it)."""
        document = (json.dumps({"Width": width, "Height": height}) + "\n").encode()
        if self._socket is not None:
            assert self._ws_protocol is not None
            await self._socket.send(encode_message(self._ws_protocol, Channel.RESIZE, document))
        else:
            await self._streams["resize"].write(document)

    async def read(self, stream: str = "stdout", max_bytes: int = 65536) -> bytes:
        """Some output; b"" at its end."""
        if self._socket is not None:
            channel = Channel.STDOUT if stream == "stdout" else Channel.STDERR
            data = await self._channels[channel].get()
            if data is None:
                self._channels[channel].put_nowait(None)
                return b""
            return data
        try:
            return await self._streams[stream].read(max_bytes)
        except StreamClosedError:
            return b""

    async def _read_to_end(self, stream: str) -> bytes:
        parts = []
        while data := await self.read(stream):
            parts.append(data)
        return b"".join(parts)

    async def finish(self) -> CommandResult:
        """Read stdout and stderr to their end, then the status (as client-go's v4 does)."""
        outputs = [
            self._read_to_end(name) if self._has(name) else _empty()
            for name in ("stdout", "stderr")
        ]
        stdout, stderr = await asyncio.gather(*outputs)
        if self._socket is not None:
            error_parts = []
            while (data := await self._channels[Channel.ERROR].get()) is not None:
                error_parts.append(data)
            error = b"".join(error_parts)
        else:
            error = await self._streams["error"].read_all() if "error" in self._streams else b""
        await self.close()
        status = None
        if self.json_status and error:
            loaded = json.loads(error)
            status = loaded if isinstance(loaded, dict) else None
        return CommandResult(stdout, stderr, error, status)

    def _has(self, name: str) -> bool:
        if self._socket is not None:
            return True
        return name in self._streams

    async def close(self) -> None:
        """Hang up (client-go resets its streams and sends GOAWAY)."""
        if self._session is not None:
            for stream in self._streams.values():
                if not stream.broken:
                    stream.reset()
            await self._session.close()
        if self._socket is not None:
            await self._socket.close()
            if self._demux is not None:
                self._demux.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._demux


async def _empty() -> bytes:
    return b""


# --- port-forward --------------------------------------------------------------------------------


class ForwardedConnection:
    """One forwarded TCP connection: a data stream and an error stream."""

    def __init__(self, data: SpdyStream, error: SpdyStream) -> None:
        self.data = data
        self.error_stream = error

    async def write(self, data: bytes) -> None:
        """Bytes to the pod."""
        await self.data.write(data)

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Bytes from the pod; b"" after its FIN. Raises `StreamClosedError` on a reset."""
        return await self.data.read(max_bytes)

    async def close_write(self) -> None:
        """Half-close towards the pod (our local side hit EOF)."""
        await self.data.close()

    async def error(self) -> str:
        """The error stream's text (empty on success), read to its end."""
        return (await self.error_stream.read_all()).decode("utf-8", "replace")

    def reset(self) -> None:
        """Drop the connection (client-go resets the data stream when done)."""
        self.data.reset()


class PortForwarder:
    """A client's port-forward session over SPDY, possibly tunnelled in a WebSocket."""

    def __init__(self, session: SpdySession, protocol: str) -> None:
        self.session = session
        self.protocol = protocol
        self._request_id = 0

    @classmethod
    async def spdy(cls, url: str) -> PortForwarder:
        """Connect as `crictl port-forward` does by default."""
        session, protocol = await spdy_connect(url, (PORTFORWARD_PROTOCOL,))
        return cls(session, protocol)

    @classmethod
    async def tunnel(cls, url: str) -> PortForwarder:
        """Connect as `crictl port-forward --transport websocket` does."""
        socket, chosen = await websocket_connect(url, [TUNNEL_PREFIX + PORTFORWARD_PROTOCOL])
        transport: ByteTransport = WebSocketByteTransport(socket)
        session = SpdySession(transport, spdy.Role.CLIENT)
        session.start()
        return cls(session, chosen.removeprefix(TUNNEL_PREFIX))

    async def connect(self, port: int) -> ForwardedConnection:
        """Open a forwarded connection (error stream first and half-closed, then data)."""
        request_id = str(self._request_id)
        self._request_id += 1
        headers = {"streamtype": "error", "port": str(port), "requestid": request_id}
        error = await self.session.open_stream(headers)
        await error.close()
        data = await self.session.open_stream({**headers, "streamtype": "data"})
        return ForwardedConnection(data, error)

    async def close(self) -> None:
        """End the session."""
        await self.session.close()


class WebSocketPortForward:
    """Port-forward over WebSocket channels: one connection per requested port."""

    def __init__(self, socket: WebSocket, protocol: ChannelProtocol, ports: Sequence[int]) -> None:
        self.socket = socket
        self.protocol = protocol
        self.ports = list(ports)
        self.channels: dict[int, asyncio.Queue[bytes | None]] = {
            c: asyncio.Queue() for c in range(2 * len(ports))
        }
        self._demux = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls, url: str, ports: Sequence[int], protocol: str = "v4.channel.k8s.io"
    ) -> WebSocketPortForward:
        """Open the WebSocket; `ports` must match what the URL serves (request or ?port=)."""
        socket, chosen = await websocket_connect(url, [protocol])
        return cls(socket, PORTFORWARD_PROTOCOLS[chosen], ports)

    async def _read(self) -> None:
        try:
            while (message := await self.socket.receive()) is not None:
                decoded = decode_message(self.protocol, message)
                if isinstance(decoded, ChannelData) and decoded.channel in self.channels:
                    self.channels[decoded.channel].put_nowait(decoded.data)
        finally:
            for queue in self.channels.values():
                queue.put_nowait(None)

    async def read_channel(self, channel: int) -> bytes:
        """The next message on `channel`; b"" once the WebSocket closed."""
        data = await self.channels[channel].get()
        if data is None:
            self.channels[channel].put_nowait(None)
            return b""
        return data

    async def port_prefix(self, index: int) -> tuple[int, int]:
        """The port numbers the server announces on the data and error channels."""
        data = await self.read_channel(2 * index)
        error = await self.read_channel(2 * index + 1)
        return struct.unpack("<H", data)[0], struct.unpack("<H", error)[0]

    async def write(self, index: int, data: bytes) -> None:
        """Bytes to the pod on port `index`."""
        await self.socket.send(encode_message(self.protocol, 2 * index, data))

    async def close(self) -> None:
        """Close the WebSocket."""
        await self.socket.close()
        self._demux.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._demux
