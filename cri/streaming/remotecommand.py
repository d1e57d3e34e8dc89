"""Exec and attach sessions: the Kubernetes remote command protocol over SPDY or WebSocket.

SPDY (`v4.channel.k8s.io`, `v3.`, `v2.`, `channel.k8s.io`), after the upgrade:

    client                                              server
    SYN_STREAM streamType=error                 ──▶     SYN_REPLY   (each stream, at once)
    SYN_STREAM streamType=stdin   (if asked)    ──▶     SYN_REPLY
    SYN_STREAM streamType=stdout  (if asked)    ──▶     SYN_REPLY
    SYN_STREAM streamType=stderr  (no tty)      ──▶     SYN_REPLY
    SYN_STREAM streamType=resize  (tty, v3+)    ──▶     SYN_REPLY
        (all expected streams within 30 s, or the session is closed)
    stdin DATA ... FIN                          ──▶     process stdin ... EOF
    resize DATA {"Width":80,"Height":24}\n...   ──▶     runtime resize events
                                                ◀──     stdout / stderr DATA ..., FIN
                                                ◀──     error DATA <status>, FIN
                                                ◀──     GOAWAY, then TCP close

The client waits for FIN on stdout and stderr, then reads the error stream to its end:
v4 carries a JSON metav1.Status (Success, NonZeroExitCode with an ExitCode cause, or
InternalError), v1-v3 carry only a failure's text. v1 resets the error stream and
half-closes stdin right after setup (a quirk clients of v1 expect).

WebSocket channels (see channels.py) carry the same streams as channels 0-4; the server
first sends an empty stdout message (stderr, else error, when stdout was not asked) to
say it is ready, and ends the session by closing the WebSocket after the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from common.errors import DomainError
from cri.streaming import spdy
from cri.streaming.channels import Channel, ChannelProtocol
from cri.streaming.requests import AttachSpec, ExecSpec
from cri.streaming.runtime import (
    InputStream,
    OutputStream,
    StdioStreams,
    StreamClosedError,
    StreamingRuntime,
    TerminalSize,
)
from cri.streaming.session import SpdySession, SpdyStream
from cri.streaming.websocket import ChannelMux, WebSocket

log = logging.getLogger("crib.streaming")


@dataclasses.dataclass(frozen=True)
class SpdyVersion:
    """What a remote command protocol version adds."""

    name: str
    resize: bool  # v3+: a resize stream with a tty
    json_status: bool  # v4+: metav1.Status on the error stream


SPDY_VERSIONS = {
    v.name: v
    for v in (
        SpdyVersion("v4.channel.k8s.io", resize=True, json_status=True),
        SpdyVersion("v3.channel.k8s.io", resize=True, json_status=False),
        SpdyVersion("v2.channel.k8s.io", resize=False, json_status=False),
        SpdyVersion("channel.k8s.io", resize=False, json_status=False),
    )
}
# Server preference does not matter (the client's order wins); v4 first for readability.
SPDY_PROTOCOLS = tuple(SPDY_VERSIONS)

STREAM_TYPE = "streamtype"  # header names arrive lower-cased
# How long a tty session waits for the client's initial terminal size before starting.
INITIAL_SIZE_WAIT_S = 0.25
STDIN, STDOUT, STDERR, ERROR, RESIZE = "stdin", "stdout", "stderr", "error", "resize"


# --- the outcome and how each protocol version reports it -------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a session ended: an exit code (exec), success, or an internal error."""

    exit_code: int = 0
    error: str = ""
    # The message of a non-zero exit, as CRI runtimes word it.
    exit_message: str = ""

    @property
    def success(self) -> bool:
        """Whether the client should see Success."""
        return not self.error and self.exit_code == 0


def exec_outcome(exit_code: int, cmd: tuple[str, ...]) -> Outcome:
    """The outcome of a finished exec; codes outside 0-255 are normalised as a shell would."""
    if exit_code < 0:
        exit_code = 128 - exit_code  # killed by signal -N (Python's convention)
    exit_code &= 0xFF
    if exit_code == 0:
        return Outcome()
    # Go prints a []string as [a b c]; containerd and CRI-O word the error this way.
    words = " ".join(cmd)
    return Outcome(
        exit_code=exit_code,
        exit_message=f"error executing command [{words}], exit code {exit_code}",
    )


def status_document(outcome: Outcome) -> dict[str, object]:
    """The metav1.Status a v4+ client decodes (keys in the order Go writes them)."""
    if outcome.error:
        return {
            "status": "Failure",
            "message": f"Internal error occurred: {outcome.error}",
            "reason": "InternalError",
            "code": 500,
        }
    if outcome.exit_code:
        return {
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {outcome.exit_message}",
            "reason": "NonZeroExitCode",
            # The cause's type is serialised under "reason" (metav1.StatusCause).
            "details": {"causes": [{"reason": "ExitCode", "message": str(outcome.exit_code)}]},
        }
    return {"status": "Success"}


def encode_status(outcome: Outcome, json_status: bool) -> bytes:
    """The error-stream payload: JSON for v4+, the failure text (or nothing) before."""
    document = status_document(outcome)
    if json_status:
        return json.dumps(document, separators=(",", ":")).encode("utf-8")
    if outcome.success:
        return b""
    return str(document["message"]).encode("utf-8")


# --- resize events ----------------------------------------------------------------------------


async def resize_events(stream: InputStream) -> AsyncIterator[TerminalSize]:
    """Terminal sizes from a resize stream: JSON objects, one after another.

    Decoding stops at the first malformed object or at end of stream (as Go's
    json.Decoder loop in the CRI library does). Keys match case-insensitively like
    encoding/json; sizes are uint16.
    """
    decoder = json.JSONDecoder()
    buffer = ""
    while True:
        try:
            data = await stream.read()
        except StreamClosedError:
            return
        if not data:
            return
        buffer += data.decode("utf-8", "replace")
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                document, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                if len(buffer) > 4096:
                    return  # no object is that long: the stream is garbage
                break  # an incomplete object: wait for more
            buffer = buffer[end:]
            size = _terminal_size(document)
            if size is None:
                return
            yield size


async def first_size(
    events: AsyncIterator[TerminalSize], wait_s: float = INITIAL_SIZE_WAIT_S
) -> tuple[TerminalSize | None, AsyncIterator[TerminalSize]]:
    """The client's initial terminal size (waiting at most `wait_s`) and the later ones.

    client-go sends the initial size as soon as its streams exist, about one round trip
    after the server saw them; a client that sends none costs `wait_s` once per session.
    """
    first = asyncio.ensure_future(anext(events))
    # Mark the outcome retrieved even if nobody ever iterates `later()`.
    first.add_done_callback(lambda task: task.cancelled() or task.exception())
    await asyncio.wait({first}, timeout=wait_s)
    if first.done():
        try:
            return first.result(), events
        except StopAsyncIteration:
            return None, events

    async def later() -> AsyncIterator[TerminalSize]:
        # The first size arrived late: deliver it as a resize, then the rest.
        try:
            yield await first
        except StopAsyncIteration:
            return
        async for size in events:
            yield size

    return None, later()


def _terminal_size(document: object) -> TerminalSize | None:
    if not isinstance(document, dict):
        return None
    fields = {str(k).lower(): v for k, v in document.items()}
    width, height = fields.get("width", 0), fields.get("height", 0)
    for value in (width, height):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
            return None
    return TerminalSize(width=width, height=height)


# --- running the runtime ----------------------------------------------------------------------


async def run_session(
    spec: ExecSpec | AttachSpec,
    runtime: StreamingRuntime,
    stdio: StdioStreams,
    connection_lost: asyncio.Event,
) -> Outcome | None:
    """Run exec or attach until it finishes or the client goes away (then None)."""
    started = time.monotonic()
    coroutine: Awaitable[int | None]
    if isinstance(spec, ExecSpec):
        coroutine = runtime.exec(spec.container_id, spec.cmd, stdio)
        what = f"exec {list(spec.cmd)} in container {spec.container_id}"
    else:
        coroutine = runtime.attach(spec.container_id, stdio)
        what = f"attach to container {spec.container_id}"
    work = asyncio.ensure_future(coroutine)
    lost = asyncio.ensure_future(connection_lost.wait())
    try:
        await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            log.info("%s: client went away after %.1f s", what, time.monotonic() - started)
    if work.cancelled():
        return None
    elapsed_s = time.monotonic() - started
    try:
        result = work.result()
    except DomainError as err:
        log.warning("%s failed after %.1f s: %s", what, elapsed_s, err)
        verb = "executing command in" if isinstance(spec, ExecSpec) else "attaching to"
        return Outcome(error=f"error {verb} container: {err}")
    except Exception as err:  # a runtime bug must still end the session cleanly
        log.error("%s failed after %.1f s", what, elapsed_s, exc_info=err)
        return Outcome(error=f"internal error: {type(err).__name__}: {err}")
    if isinstance(spec, ExecSpec):
        outcome = exec_outcome(int(result or 0), spec.cmd)
        log.info("%s: exit %d after %.1f s", what, outcome.exit_code, elapsed_s)
        return outcome
    log.info("%s: detached after %.1f s", what, elapsed_s)
    return Outcome()


# --- SPDY -------------------------------------------------------------------------------------


async def _collect_streams(
    session: SpdySession, version: SpdyVersion, spec: ExecSpec | AttachSpec, timeout_s: float
) -> dict[str, SpdyStream] | None:
    """Accept the client's streams until every expected one is there (None: gave up)."""
    known = {ERROR, STDIN, STDOUT, STDERR} | ({RESIZE} if version.resize else set())
    expected = 1 + spec.stdin + spec.stdout + spec.stderr + (spec.tty and version.resize)
    streams: dict[str, SpdyStream] = {}
    received = 0
    try:
        async with asyncio.timeout(timeout_s):
            while received < expected:
                stream = await session.accept_stream()
                if stream is None:
                    return None
                session.reply(stream)
                kind = stream.header(STREAM_TYPE) or ""
                if kind not in known:
                    log.warning("%s: unexpected stream type %r", session.name, kind)
                    stream.discard_input()
                    continue
                streams[kind] = stream
                received += 1
    except TimeoutError:
        log.warning(
            "%s: timed out waiting for client to create streams (%d of %d after %.0f s)",
            session.name,
            received,
            expected,
            timeout_s,
        )
        return None
    return streams


async def _refuse_late_streams(session: SpdySession) -> None:
    while (stream := await session.accept_stream()) is not None:
        stream.reset(spdy.RstStatus.REFUSED_STREAM)


async def serve_spdy(
    session: SpdySession,
    protocol: str,
    spec: ExecSpec | AttachSpec,
    runtime: StreamingRuntime,
    creation_timeout_s: float,
) -> None:
    """One exec or attach over an upgraded SPDY session, from stream setup to GOAWAY."""
    version = SPDY_VERSIONS[protocol]
    streams = await _collect_streams(session, version, spec, creation_timeout_s)
    if streams is None:
        await session.close()
        return
    late = asyncio.ensure_future(_refuse_late_streams(session))
    error = streams.get(ERROR)
    stdin = streams.get(STDIN)
    if protocol == "channel.k8s.io":
        # v1: the error stream is reset and stdin half-closed right after setup.
        if error is not None:
            error.reset()
            error = None
        if stdin is not None:
            await stdin.close()
    resize_stream = streams.get(RESIZE) if spec.tty else None
    initial_size, resize = None, None
    if resize_stream is not None:
        initial_size, resize = await first_size(resize_events(resize_stream))
    stdio = StdioStreams(
        tty=spec.tty,
        stdin=stdin,
        stdout=streams.get(STDOUT),
        stderr=streams.get(STDERR),
        resize=resize,
        initial_size=initial_size,
    )
    try:
        outcome = await run_session(spec, runtime, stdio, session.closed)
        if outcome is None:
            return
        # The client reads stdout and stderr to their end before the status.
        for name in (STDOUT, STDERR):
            if (stream := streams.get(name)) is not None:
                await stream.close()
        if error is not None:
            with contextlib.suppress(StreamClosedError):
                await error.write(encode_status(outcome, version.json_status))
            await error.close()
        for name in (STDIN, RESIZE):
            if (stream := streams.get(name)) is not None:
                stream.discard_input()
                await stream.close()
    finally:
        late.cancel()
        await session.close()


# --- WebSocket --------------------------------------------------------------------------------


async def serve_websocket(
    socket: WebSocket,
    protocol: ChannelProtocol,
    spec: ExecSpec | AttachSpec,
    runtime: StreamingRuntime,
) -> None:
    """One exec or attach over a WebSocket with Kubernetes channels."""
    mux = ChannelMux(socket, protocol, inputs=(Channel.STDIN, Channel.RESIZE))
    mux.start()
    try:
        ready = Channel.STDOUT if spec.stdout else Channel.STDERR if spec.stderr else Channel.ERROR
        await mux.send(ready, b"")
        stdout: OutputStream | None = mux.output(Channel.STDOUT) if spec.stdout else None
        stderr: OutputStream | None = mux.output(Channel.STDERR) if spec.stderr else None
        stdin = mux.inputs[Channel.STDIN]
        if not spec.stdin:
            stdin.discard_input()
        initial_size, resize = None, None
        if spec.tty:
            initial_size, resize = await first_size(resize_events(mux.inputs[Channel.RESIZE]))
        else:
            mux.inputs[Channel.RESIZE].discard_input()
        stdio = StdioStreams(
            tty=spec.tty,
            stdin=stdin if spec.stdin else None,
            stdout=stdout,
            stderr=stderr,
            resize=resize,
            initial_size=initial_size,
        )
        outcome = await run_session(spec, runtime, stdio, mux.closed)
        if outcome is None:
            return
        status = encode_status(outcome, protocol.json_status)
        if status:
            with contextlib.suppress(StreamClosedError):
                await mux.send(Channel.ERROR, status)
    except StreamClosedError:
        pass
    finally:
        await mux.close()
