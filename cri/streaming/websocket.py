"""The asyncio side of WebSocket (wsproto does the framing): whole messages in and out.

After the HTTP handshake the connection carries WebSocket frames; `WebSocket` reassembles
messages, answers pings (client-go pings every 5 s and gives up after 12 unanswered),
and closes cleanly. `WebSocketByteTransport` turns binary messages into a byte stream for
the SPDY-over-WebSocket tunnel (`SPDY/3.1+portforward.k8s.io`, client-go
tunneling_connection.go: every write is one binary message, reads concatenate them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence

from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason

from cri.streaming.channels import (
    ChannelClose,
    ChannelProtocol,
    ChannelProtocolError,
    decode_message,
    encode_message,
)
from cri.streaming.runtime import StreamClosedError
from cri.streaming.transport import take_chunk

log = logging.getLogger("crib.streaming")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
READ_BYTES = 256 * 1024
CLOSE_LINGER_S = 5.0


class WebSocket:
    """One WebSocket connection, either end, after its opening handshake."""

    def __init__(
        self,
        ws: WSConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        initial: bytes = b"",
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._ws = ws
        self._reader = reader
        self._writer = writer
        self._pending: collections.deque[Event] = collections.deque()
        self._partial: list[bytes | bytearray | str] = []
        self._partial_bytes = 0
        self._max_message_bytes = max_message_bytes
        self.remote_closed = asyncio.Event()
        self.close_code: int | None = None
        self.pong = asyncio.Event()  # set when a pong arrives (our keepalive was answered)
        self.last_activity = asyncio.get_running_loop().time()
        # Events wsproto already produced from bytes read along with the handshake.
        self._pending.extend(self._ws.events())
        if initial:
            self._feed(initial)

    def _feed(self, data: bytes | None) -> None:
        self._ws.receive_data(data)
        self._pending.extend(self._ws.events())

    @property
    def open(self) -> bool:
        """Whether we may still send messages."""
        return self._ws.state is ConnectionState.OPEN and not self._writer.is_closing()

    def _write(self, data: bytes) -> None:
        if data and not self._writer.is_closing():
            self._writer.write(data)
            self.last_activity = asyncio.get_running_loop().time()

    async def receive(self) -> bytes | str | None:
        """The next whole message; None once the peer closed (or the connection broke)."""
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, BytesMessage | TextMessage):
                    self._partial.append(event.data)
                    self._partial_bytes += len(event.data)
                    if self._partial_bytes > self._max_message_bytes:
                        log.warning("websocket message above %d bytes", self._max_message_bytes)
                        self._fail(CloseReason.MESSAGE_TOO_BIG)
                        return None
                    if event.message_finished:
                        parts, self._partial, self._partial_bytes = self._partial, [], 0
                        if isinstance(event, TextMessage):
                            return "".join(str(p) for p in parts)
                        return b"".join(bytes(p) for p in parts)  # type: ignore[arg-type]
                elif isinstance(event, Ping):
                    self._write(self._ws.send(event.response()))
                elif isinstance(event, Pong):
                    self.pong.set()
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        self._write(self._ws.send(event.response()))
                    elif self._ws.state is ConnectionState.OPEN:
                        # wsproto could not parse a frame: close with its code (RFC 6455 7.1.7).
                        self._write(self._ws.send(CloseConnection(code=event.code)))
                    self._closed()
                    return None
            if self.remote_closed.is_set():
                return None
            try:
                data = await self._reader.read(READ_BYTES)
            except (ConnectionError, OSError):
                data = b""
            self.last_activity = asyncio.get_running_loop().time()
            self._feed(data or None)

    def _closed(self) -> None:
        self.remote_closed.set()
        self._writer.close()

    def _fail(self, code: CloseReason) -> None:
        if self._ws.state is ConnectionState.OPEN:
            self._write(self._ws.send(CloseConnection(code=code)))
        self._closed()

    def send_nowait(self, message: bytes | str) -> None:
        """Queue one message (binary for bytes, text for str)."""
        if not self.open:
            raise StreamClosedError("websocket closed")
        if isinstance(message, str):
            self._write(self._ws.send(TextMessage(data=message)))
        else:
            self._write(self._ws.send(BytesMessage(data=message)))

    def send_ping(self, payload: bytes = b"") -> None:
        """A keepalive ping (client-go sends one every 5 s and expects the pong)."""
        if not self.open:
            raise StreamClosedError("websocket closed")
        self.pong.clear()
        self._write(self._ws.send(Ping(payload=payload)))

    async def drain(self) -> None:
        """Wait while the peer is slow to read."""
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as err:
            raise StreamClosedError(f"websocket connection lost: {err}") from None

    async def send(self, message: bytes | str) -> None:
        """Send one message and wait for the socket to drain."""
        self.send_nowait(message)
        await self.drain()

    def send_close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (we send nothing after this)."""
        if self._ws.state is ConnectionState.OPEN and not self._writer.is_closing():
            self._write(self._ws.send(CloseConnection(code=code, reason=reason or None)))

    async def close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close cleanly: send our close frame, wait (bounded) for the peer's, hang up.

        Somebody must be calling `receive()` meanwhile (the session's reader does).
        """
        self.send_close(code, reason)
        with contextlib.suppress(ConnectionError, OSError, StreamClosedError):
            await self.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.remote_closed.wait(), CLOSE_LINGER_S)
        self.abort()

    def abort(self) -> None:
        """Drop the connection now."""
        self.remote_closed.set()
        self._writer.close()


class WebSocketByteTransport:
    """A byte stream over binary WebSocket messages (the SPDY tunnel)."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket

    async def read(self) -> bytes:
        """The next non-empty binary message; b"" when the WebSocket closed."""
        while True:
            message = await self.socket.receive()
            if message is None:
                return b""
            if isinstance(message, str):
                raise ConnectionResetError("text message on a SPDY tunnel")
            if message:
                return message

    def write(self, data: bytes) -> None:
        """Send `data` as one binary message (dropped once closing)."""
        if data and self.socket.open:
            self.socket.send_nowait(data)

    async def drain(self) -> None:
        """Wait for the socket to drain."""
        try:
            await self.socket.drain()
        except StreamClosedError as err:
            raise ConnectionResetError(str(err)) from None

    def write_eof(self) -> None:
        """Our half of the closing handshake: a close frame."""
        self.socket.send_close()

    def close(self) -> None:
        """Hang up."""
        self.socket.abort()


# --- Kubernetes channels over one WebSocket --------------------------------------------------

CHANNEL_HIGH_WATER_BYTES = 1 << 20
CHANNEL_LOW_WATER_BYTES = 256 * 1024
MAX_CHANNEL_MESSAGE_BYTES = 1 << 20


class ChannelInput:
    """Bytes the client sends on one channel (an `InputStream`)."""

    def __init__(self, channel: int) -> None:
        self.channel = channel
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.ended = False  # v5 CLOSE signal
        self.lost = False  # the WebSocket closed
        self._discarding = False

    def feed(self, data: bytes) -> None:
        """Data from the demultiplexer."""
        if self._discarding or self.ended or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > CHANNEL_HIGH_WATER_BYTES:
            self.space.clear()
        self._readable.set()

    def end(self) -> None:
        """The client half-closed this channel."""
        self.ended = True
        self._readable.set()

    def lose(self) -> None:
        """The connection is gone."""
        self.lost = True
        self._readable.set()
        self.space.set()

    def discard_input(self) -> None:
        """Nobody reads this channel any more: drop what comes."""
        self._discarding = True
        self._chunks.clear()
        self._buffered = 0
        self.space.set()

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes`; b"" after the client's CLOSE signal.

        Raises `StreamClosedError` once the WebSocket is gone.
        """
        while not self._chunks:
            if self.ended:
                return b""
            if self.lost:
                raise StreamClosedError(f"channel {self.channel}: websocket closed")
            self._readable.clear()
            await self._readable.wait()
        chunk = take_chunk(self._chunks, max_bytes)
        self._buffered -= len(chunk)
        if self._buffered <= CHANNEL_LOW_WATER_BYTES:
            self.space.set()
        return chunk


class ChannelOutput:
    """Bytes to the client on one channel (an `OutputStream`)."""

    def __init__(self, mux: ChannelMux, channel: int) -> None:
        self._mux = mux
        self.channel = channel
        self.closed = False

    async def write(self, data: bytes) -> None:
        """Send `data` as messages of at most `MAX_CHANNEL_MESSAGE_BYTES`."""
        if self.closed:
            raise StreamClosedError(f"channel {self.channel}: closed")
        for offset in range(0, len(data), MAX_CHANNEL_MESSAGE_BYTES):
            await self._mux.send(self.channel, data[offset : offset + MAX_CHANNEL_MESSAGE_BYTES])

    async def close(self) -> None:
        """No more output on this channel. Nothing goes on the wire: Kubernetes servers
        signal the end of output by closing the WebSocket."""
        self.closed = True


class ChannelDuplex:
    """A read/write channel pair (port-forward data)."""

    def __init__(self, source: ChannelInput, sink: ChannelOutput) -> None:
        self.source = source
        self.sink = sink

    async def read(self, max_bytes: int = 65536) -> bytes:
        """See `ChannelInput.read`."""
        return await self.source.read(max_bytes)

    async def write(self, data: bytes) -> None:
        """See `ChannelOutput.write`."""
        await self.sink.write(data)

    async def close(self) -> None:
        """See `ChannelOutput.close`."""
        await self.sink.close()


class ChannelMux:
    """Demultiplexes client messages into `ChannelInput`s; multiplexes outputs.

    Messages for channels without an input are dropped, as wsstream does; a framing
    error closes the connection with 1002 (protocol error).
    """

    def __init__(self, socket: WebSocket, protocol: ChannelProtocol, inputs: Sequence[int]) -> None:
        self.socket = socket
        self.protocol = protocol
        self.inputs = {channel: ChannelInput(channel) for channel in inputs}
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the demultiplexing task."""
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def closed(self) -> asyncio.Event:
        """Set once the WebSocket is gone."""
        return self.socket.remote_closed

    def output(self, channel: int) -> ChannelOutput:
        """A writer for `channel`."""
        return ChannelOutput(self, channel)

    async def send(self, channel: int, data: bytes) -> None:
        """One message on `channel`."""
        await self.socket.send(encode_message(self.protocol, channel, data))

    async def _read_loop(self) -> None:
        try:
            while (message := await self.socket.receive()) is not None:
                try:
                    decoded = decode_message(self.protocol, message)
                except ChannelProtocolError as err:
                    log.warning("websocket %s: %s", self.protocol.name or "(unnamed)", err)
                    self.socket.send_close(CloseReason.PROTOCOL_ERROR, str(err)[:100])
                    break
                if isinstance(decoded, ChannelClose):
                    if (target := self.inputs.get(decoded.channel)) is not None:
                        target.end()
                elif decoded is not None and (target := self.inputs.get(decoded.channel)):
                    target.feed(decoded.data)
                    await target.space.wait()
        finally:
            for target in self.inputs.values():
                target.lose()

    async def close(self) -> None:
        """Close the WebSocket normally (the end-of-output signal for the client)."""
        await self.socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
