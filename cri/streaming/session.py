"""The asyncio side of SPDY: runs a `spdy.SpdyConnection` over a `ByteTransport`.

One task reads the transport, feeds the sans-I/O core and routes its events to
`SpdyStream` objects; every send happens synchronously in the caller's task (core call,
then `transport.write`), so frames leave in exactly the order the core produced them.

    transport ──read──▶ reader task ──events──▶ SpdyStream buffers ──read()──▶ application
    application ──write()──▶ SpdyConnection ──data_to_send()──▶ transport (then drain)

Inbound backpressure: a stream holding more than `STREAM_HIGH_WATER_BYTES` unread pauses
the reader task (the TCP window then slows the peer) until the application reads it down
to `STREAM_LOW_WATER_BYTES`. Go clients ignore SPDY windows, so this is the only brake
that works on them; peers that honour windows also get WINDOW_UPDATE as data is read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping

from cri.streaming import spdy
from cri.streaming.runtime import StreamClosedError
from cri.streaming.transport import ByteTransport, take_chunk

log = logging.getLogger("crib.streaming")

STREAM_HIGH_WATER_BYTES = 1 << 20
STREAM_LOW_WATER_BYTES = 256 * 1024
# After our GOAWAY, how long the peer gets to close the connection itself.
CLOSE_LINGER_S = 5.0


class SpdyStream:
    """One SPDY stream as an async byte stream (satisfies the runtime stream protocols)."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Mapping[str, str]) -> None:
        self.session = session
        self.stream_id = stream_id
        self.headers = dict(headers)
        self._chunks: collections.deque[bytes] = collections.deque()
        self.buffered_bytes = 0
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.replied = asyncio.Event()
        self.ended = False  # the peer half-closed
        self.reset_status: int | None = None  # RST_STREAM seen or sent
        self.lost = False  # the session ended under this stream
        self._discarding = False

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case)."""
        return spdy.header_value(self.headers, name)

    def __repr__(self) -> str:
        return f"<SpdyStream {self.stream_id} {self.headers}>"

    # -- events from the reader task ------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._discarding:
            self.session._consumed(self, len(data))
            return
        self._chunks.append(data)
        self.buffered_bytes += len(data)
        if self.buffered_bytes > STREAM_HIGH_WATER_BYTES:
            self._space.clear()
        self._readable.set()

    def _end(self) -> None:
        self.ended = True
        self._readable.set()

    def _close_abruptly(self, status: int | None) -> None:
        if status is not None and self.reset_status is None:
            self.reset_status = status
        if status is None:
            self.lost = True
        self._readable.set()
        self._space.set()
        self.replied.set()

    # -- reading ----------------------------------------------------------------------------------

    @property
    def broken(self) -> bool:
        """Reset by either side, or the session is gone."""
        return self.reset_status is not None or self.lost

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes` of the peer's data; b"" after its FIN.

        Raises `StreamClosedError` once the stream is reset or the session lost before
        the peer's FIN (data that arrived before that is still returned first).
        """
        while not self._chunks:
            if self.ended:
                return b""  # the peer's FIN came first: a clean end, whatever followed
            if self.broken:
                raise StreamClosedError(f"stream {self.stream_id} closed ({self._why()})")
            self._readable.clear()
            await self._readable.wait()
        chunk = take_chunk(self._chunks, max_bytes)
        self.buffered_bytes -= len(chunk)
        if self.buffered_bytes <= STREAM_LOW_WATER_BYTES:
            self._space.set()
        self.session._consumed(self, len(chunk))
        return chunk

    async def read_all(self, limit_bytes: int = 1 << 20) -> bytes:
        """Everything until the peer's FIN (or a reset), at most `limit_bytes`."""
        parts: list[bytes] = []
        size = 0
        with contextlib.suppress(StreamClosedError):
            while size < limit_bytes and (data := await self.read()):
                parts.append(data)
                size += len(data)
        return b"".join(parts)

    def discard_input(self) -> None:
        """Drop buffered and future data from the peer: nobody will read this stream again.

        A finished port-forward or exec must not let a still-sending client fill the
        buffer and stall the whole session (CRI-O learnt this the hard way,
        https://bugzilla.redhat.com/show_bug.cgi?id=1798193).
        """
        self._discarding = True
        dropped = self.buffered_bytes
        self._chunks.clear()
        self.buffered_bytes = 0
        self._space.set()
        if dropped:
            self.session._consumed(self, dropped)

    def _why(self) -> str:
        if self.reset_status is not None:
            try:
                return f"reset: {spdy.RstStatus(self.reset_status).name}"
            except ValueError:
                return f"reset: status {self.reset_status}"
        return "connection lost"

    # -- writing ----------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """Whether this side may still send on the stream."""
        if self.broken or self.session.conn.closed:
            return False
        state = self.session.conn.stream_state(self.stream_id)
        return spdy.can_send(state)

    async def write(self, data: bytes) -> None:
        """Send `data` to the peer, waiting for window credit and socket drain."""
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            if not self.writable:
                raise StreamClosedError(
                    f"stream {self.stream_id} closed for writing ({self._why()})"
                )
            window = self.session.conn.send_window(self.stream_id)
            if window == 0:
                await self.session._window_changed()
                continue
            end = len(data) if window is None else min(len(data), offset + window)
            self.session.conn.send_data(self.stream_id, bytes(view[offset:end]))
            self.session._flush()
            offset = end
            await self.session._drain()

    async def close(self) -> None:
        """Half-close (FIN): the peer reads end of stream. Harmless when already closed."""
        if self.writable:
            self.session.conn.end_stream(self.stream_id)
            self.session._flush()
            self.session._forget(self.stream_id)
            with contextlib.suppress(StreamClosedError):
                await self.session._drain()

    def reset(self, status: spdy.RstStatus = spdy.RstStatus.CANCEL) -> None:
        """Abort the stream both ways (RST_STREAM)."""
        if not self.session.conn.closed:
            self.session.conn.reset_stream(self.stream_id, status)
            self.session._flush()
        self.session._forget(self.stream_id)
        self._close_abruptly(status)


class SpdySession:
    """A SPDY/3.1 session over `transport`; call `start()`, then use streams."""

    def __init__(
        self,
        transport: ByteTransport,
        role: spdy.Role,
        *,
        idle_timeout_s: float | None = None,
        name: str = "spdy",
    ) -> None:
        self.conn = spdy.SpdyConnection(role)
        self.name = name
        self._transport = transport
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._window_waiters: list[asyncio.Future[None]] = []
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._idle_timeout_s = idle_timeout_s
        self._last_activity = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()  # the transport is done: nothing more in or out
        self.close_reason = ""

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading the transport (and the idle watchdog)."""
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._reader = loop.create_task(self._read_loop(), name=f"{self.name} reader")
        if self._idle_timeout_s:
            self._watchdog = loop.create_task(self._watch_idle(), name=f"{self.name} idle")

    async def _read_loop(self) -> None:
        reason = "peer closed the connection"
        try:
            while True:
                data = await self._transport.read()
                if not data:
                    break
                self._touch()
                try:
                    events = self.conn.receive_data(data)
                except spdy.ProtocolError as err:
                    reason = f"protocol error: {err}"
                    log.warning("%s: %s: sending GOAWAY", self.name, err)
                    self._flush()
                    break
                self._flush()
                for event in events:
                    self._dispatch(event)
                await self._wait_for_space()
        except (ConnectionError, OSError) as err:
            reason = f"connection error: {err}"
        except asyncio.CancelledError:
            reason = "closed"
            raise
        finally:
            self._lost(reason)

    def _lost(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason
        log.debug("%s: session ended: %s", self.name, reason)
        for stream in self._streams.values():
            stream._close_abruptly(None)
        self._streams.clear()
        for waiter in self._window_waiters:
            if not waiter.done():
                waiter.set_result(None)
        for ping in self._pings.values():
            if not ping.done():
                ping.set_exception(StreamClosedError("session closed"))
        self._incoming.put_nowait(None)
        self._transport.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.closed.set()

    async def _watch_idle(self) -> None:
        assert self._idle_timeout_s
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            idle_s = loop.time() - self._last_activity
            if idle_s >= self._idle_timeout_s:
                log.info("%s: idle for %.0f s: closing", self.name, idle_s)
                self.abort("idle timeout")
                return
            await asyncio.sleep(min(self._idle_timeout_s - idle_s + 0.01, 60.0))

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    async def close(self, status: spdy.GoAwayStatus = spdy.GoAwayStatus.OK) -> None:
        """GOAWAY, half-close the transport, give the peer `CLOSE_LINGER_S` to hang up."""
        if self.closed.is_set():
            return
        if not self.conn.closed:
            self.conn.go_away(status)
            self._flush()
            with contextlib.suppress(StreamClosedError):
                await self._drain()
        self._transport.write_eof()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed.wait()), CLOSE_LINGER_S)
        self.abort("closed")

    def abort(self, reason: str = "aborted") -> None:
        """Drop the connection now."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._lost(reason)

    # -- streams -------------------------------------------------------------------------------

    async def accept_stream(self) -> SpdyStream | None:
        """The next stream the peer opened; None once the session is over."""
        if self.closed.is_set() and self._incoming.empty():
            return None
        return await self._incoming.get()

    def reply(self, stream: SpdyStream, headers: Mapping[str, str] | None = None) -> None:
        """Accept a stream the peer opened (SYN_REPLY)."""
        if not stream.broken and not self.conn.closed:
            self.conn.send_reply(stream.stream_id, headers or {})
            self._flush()

    async def open_stream(self, headers: Mapping[str, str], timeout_s: float = 30.0) -> SpdyStream:
        """Open a stream and wait for the peer's SYN_REPLY, as spdystream clients do."""
        if self.closed.is_set():
            raise StreamClosedError("session closed")
        try:
            stream_id = self.conn.open_stream(headers)
        except spdy.LocalProtocolError as err:
            raise StreamClosedError(str(err)) from None
        stream = SpdyStream(self, stream_id, headers)
        self._streams[stream_id] = stream
        self._flush()
        await asyncio.wait_for(stream.replied.wait(), timeout_s)
        if stream.broken:
            raise StreamClosedError(f"stream {stream_id} refused ({stream._why()})")
        return stream

    async def ping(self, timeout_s: float = 30.0) -> None:
        """Send a PING and wait for the echo."""
        ping_id = self.conn.ping()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = future
        self._flush()
        try:
            await asyncio.wait_for(future, timeout_s)
        finally:
            self._pings.pop(ping_id, None)

    # -- plumbing ------------------------------------------------------------------------------

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed.is_set():
            self._transport.write(data)
            self._touch()

    async def _drain(self) -> None:
        try:
            await self._transport.drain()
        except (ConnectionError, OSError) as err:
            raise StreamClosedError(f"connection lost: {err}") from None

    async def _window_changed(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._window_waiters.append(future)
        try:
            await future
        finally:
            with contextlib.suppress(ValueError):
                self._window_waiters.remove(future)

    def _consumed(self, stream: SpdyStream, consumed_bytes: int) -> None:
        if not self.conn.closed:
            self.conn.acknowledge_received_data(stream.stream_id, consumed_bytes)
            self._flush()

    async def _wait_for_space(self) -> None:
        for stream in list(self._streams.values()):
            if not stream._space.is_set():
                await stream._space.wait()

    def _forget(self, stream_id: int) -> None:
        # A fully closed stream gets no more events; the application may still hold the
        # object and read what it buffered.
        if self.conn.stream_state(stream_id) is spdy.StreamState.CLOSED:
            self._streams.pop(stream_id, None)

    def _dispatch(self, event: spdy.Event) -> None:
        match event:
            case spdy.StreamOpened(stream_id, headers):
                stream = SpdyStream(self, stream_id, headers)
                self._streams[stream_id] = stream
                if self.conn.role is spdy.Role.CLIENT:
                    # Server push is not part of any Kubernetes protocol.
                    stream.reset(spdy.RstStatus.REFUSED_STREAM)
                else:
                    self._incoming.put_nowait(stream)
            case spdy.StreamReplied(stream_id):
                if (known := self._streams.get(stream_id)) is not None:
                    known.replied.set()
            case spdy.DataReceived(stream_id, data):
                if (known := self._streams.get(stream_id)) is not None:
                    known._feed(data)
            case spdy.StreamEnded(stream_id):
                if (known := self._streams.get(stream_id)) is not None:
                    known._end()
                    self._forget(stream_id)
            case spdy.StreamReset(stream_id, status):
                if (known := self._streams.pop(stream_id, None)) is not None:
                    known._close_abruptly(status)
            case spdy.WindowUpdated() | spdy.SettingsReceived():
                for waiter in self._window_waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            case spdy.PingAcknowledged(ping_id):
                future = self._pings.get(ping_id)
                if future is not None and not future.done():
                    future.set_result(None)
            case spdy.GoAwayReceived():
                log.debug("%s: peer sent GOAWAY", self.name)
            case spdy.HeadersReceived() | spdy.PingReceived():
                pass
