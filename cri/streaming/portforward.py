"""Port-forward sessions: `portforward.k8s.io` over SPDY (also tunnelled), and WebSocket.

SPDY: one session carries any number of forwarded connections. For each, the client
opens a pair of streams with the same `requestID`:

    client                                                   server
    SYN_STREAM streamType=error port=80 requestID=0  ──▶     SYN_REPLY (port 1-65535 and a
    DATA FIN (the client never writes on error)      ──▶       known type, else RST_STREAM)
    SYN_STREAM streamType=data  port=80 requestID=0  ──▶     SYN_REPLY; pair complete:
                                                             runtime.port_forward(sandbox, 80)
    DATA ... FIN                                     ◀─▶     DATA ... FIN (half-close both ways)
                                                     ◀──     error: FIN (or the failure text,
                                                               then RST_STREAM on both)

A pair must be complete within 30 s. Clients without requestID get one derived from the
stream id (error: id, data: id - 2), as the CRI library does for old clients. The ports
of the CRI request are not enforced here (neither does the CRI library).

WebSocket (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, unnamed): the ports come
from the CRI request (or `?port=80,8080` on the URL); port i uses channel 2i for data and
2i+1 for errors, and the server first writes the port as a little-endian uint16 on both.
Each port carries a single connection; the WebSocket closes when all are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import struct
from collections.abc import Coroutine, Sequence
from typing import Any

from common.errors import DomainError
from cri.streaming import spdy
from cri.streaming.channels import ChannelProtocol
from cri.streaming.requests import PortForwardSpec
from cri.streaming.runtime import DuplexStream, StreamClosedError, StreamingRuntime
from cri.streaming.session import SpdySession, SpdyStream
from cri.streaming.websocket import ChannelDuplex, ChannelMux, WebSocket

log = logging.getLogger("crib.streaming")

PROTOCOL = "portforward.k8s.io"
SPDY_PROTOCOLS = (PROTOCOL,)
STREAM_TYPE, PORT, REQUEST_ID = "streamtype", "port", "requestid"
DATA, ERROR = "data", "error"


def parse_port(value: str | None) -> int | None:
    """A port header or query value as Go's ParseUint(v, 10, 16), above 0; else None."""
    if value is None or not value.isdigit():
        return None
    port = int(value)
    return port if 1 <= port <= 65535 else None


def parse_query_ports(values: Sequence[str]) -> list[int] | None:
    """Ports from `?port=` values (comma lists allowed); None if any is bad or none given."""
    ports = []
    for value in values:
        for item in value.split(","):
            port = parse_port(item)
            if port is None:
                return None
            ports.append(port)
    return ports or None


async def forward(
    runtime: StreamingRuntime, sandbox_id: str, port: int, data: DuplexStream
) -> str | None:
    """Run one forwarded connection; the failure message for the client, or None."""
    try:
        await runtime.port_forward(sandbox_id, port, data)
    except StreamClosedError:
        return None  # the client went away: nobody to tell
    except DomainError as err:
        log.warning("port-forward to sandbox %s port %d: %s", sandbox_id, port, err)
        return f"error forwarding port {port} to pod {sandbox_id}, uid : {err}"
    except Exception as err:  # a runtime bug must not take the session down
        log.error("port-forward to sandbox %s port %d failed", sandbox_id, port, exc_info=err)
        return f"error forwarding port {port} to pod {sandbox_id}, uid : {err}"
    return None


# --- SPDY -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pair:
    request_id: str
    data: SpdyStream | None = None
    error: SpdyStream | None = None
    timer: asyncio.TimerHandle | None = None


class _SpdyPortForward:
    def __init__(
        self,
        session: SpdySession,
        spec: PortForwardSpec,
        runtime: StreamingRuntime,
        creation_timeout_s: float,
    ) -> None:
        self.session = session
        self.spec = spec
        self.runtime = runtime
        self.creation_timeout_s = creation_timeout_s
        self.pairs: dict[str, _Pair] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        try:
            while (stream := await self.session.accept_stream()) is not None:
                self._accept(stream)
        finally:
            for pair in self.pairs.values():
                if pair.timer is not None:
                    pair.timer.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.session.close()

    def _accept(self, stream: SpdyStream) -> None:
        port = parse_port(stream.header(PORT))
        kind = stream.header(STREAM_TYPE)
        if port is None or kind not in (DATA, ERROR):
            # client-go treats a reset before the reply as a failed CreateStream.
            log.warning(
                "%s: stream %d rejected: port %r, streamType %r",
                self.session.name,
                stream.stream_id,
                stream.header(PORT),
                kind,
            )
            stream.reset(spdy.RstStatus.REFUSED_STREAM)
            return
        self.session.reply(stream)
        request_id = stream.header(REQUEST_ID)
        if not request_id:
            # Pre-requestID clients open error then data with consecutive odd ids.
            request_id = str(stream.stream_id if kind == ERROR else stream.stream_id - 2)
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = _Pair(request_id)
            pair.timer = asyncio.get_running_loop().call_later(
                self.creation_timeout_s, self._expire, pair
            )
        if (pair.data if kind == DATA else pair.error) is not None:
            message = (
                f"error processing stream for request {request_id}: {kind} stream already assigned"
            )
            log.warning("%s: %s", self.session.name, message)
            self._spawn(self._tell(pair, message))
            stream.reset(spdy.RstStatus.PROTOCOL_ERROR)
            return
        if kind == DATA:
            pair.data = stream
        else:
            pair.error = stream
        if pair.data is not None and pair.error is not None:
            del self.pairs[request_id]
            if pair.timer is not None:
                pair.timer.cancel()
            self._spawn(self._forward(pair.data, pair.error, port))

    def _expire(self, pair: _Pair) -> None:
        if self.pairs.pop(pair.request_id, None) is None:
            return
        message = f"timed out waiting for streams of request {pair.request_id}"
        log.warning("%s: %s", self.session.name, message)
        self._spawn(self._tell(pair, message))

    async def _tell(self, pair: _Pair, message: str) -> None:
        if pair.error is not None:
            with contextlib.suppress(StreamClosedError):
                await pair.error.write(message.encode("utf-8"))

    async def _forward(self, data: SpdyStream, error: SpdyStream, port: int) -> None:
        error.discard_input()
        failure = await forward(self.runtime, self.spec.sandbox_id, port, data)
        data.discard_input()
        if failure is None:
            await data.close()
            await error.close()
            return
        with contextlib.suppress(StreamClosedError):
            await error.write(failure.encode("utf-8"))
        # A failed forward resets both streams (the client may then retry with new ones).
        data.reset()
        error.reset()


async def serve_spdy(
    session: SpdySession,
    spec: PortForwardSpec,
    runtime: StreamingRuntime,
    creation_timeout_s: float,
) -> None:
    """Serve forwarded connections until the client closes the session."""
    await _SpdyPortForward(session, spec, runtime, creation_timeout_s).run()


# --- WebSocket ------------------------------------------------------------------------------------


async def serve_websocket(
    socket: WebSocket,
    protocol: ChannelProtocol,
    spec: PortForwardSpec,
    ports: Sequence[int],
    runtime: StreamingRuntime,
) -> None:
    """Forward one connection per port over WebSocket channels."""
    mux = ChannelMux(socket, protocol, inputs=[2 * i for i in range(len(ports))])
    mux.start()

    async def one(index: int, port: int) -> None:
        data_out, error_out = mux.output(2 * index), mux.output(2 * index + 1)
        source = mux.inputs[2 * index]
        try:
            prefix = struct.pack("<H", port)
            await data_out.write(prefix)
            await error_out.write(prefix)
            failure = await forward(runtime, spec.sandbox_id, port, ChannelDuplex(source, data_out))
            if failure is not None:
                await error_out.write(failure.encode("utf-8"))
        except StreamClosedError:
            pass
        finally:
            source.discard_input()

    try:
        await asyncio.gather(*(one(i, port) for i, port in enumerate(ports)))
    finally:
        await mux.close()
