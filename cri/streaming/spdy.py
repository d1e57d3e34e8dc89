"""SPDY/3.1, sans-I/O: bytes in, events out; no sockets, no asyncio, nothing else of crib.

kubelet and crictl reach exec, attach and port-forward over SPDY/3.1 (moby/spdystream
under client-go). No maintained Python library speaks it, so this module is the whole
protocol, shaped like h2 + hyperframe: `FrameDecoder`/`encode_frame` turn bytes into
frame objects and back, `SpdyConnection` keeps the session and stream state and turns
frames into events. The I/O adapter (cri/streaming/session.py) feeds it bytes and
writes out `data_to_send()`.

Wire format (SPDY/3 draft, sections 2.2 and 2.6; all integers big-endian):

    control frame                          data frame
    +-+-------------+---------------+      +-+-----------------------------+
    |1|  version 3  |     type      |      |0|        stream id (31)       |
    +-+-------------+---------------+      +---------------+---------------+
    | flags (8)     |  length (24)  |      | flags (8)     |  length (24)  |
    +---------------+---------------+      +---------------+---------------+
    |      type-specific payload    |      |             data              |

Name/value header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib-compressed with the
SPDY/3 dictionary; ONE compression context per direction lives for the whole session,
and every block ends with a sync flush (section 2.6.10.1).

Stream states (one table, `STREAM_TRANSITIONS`; anything not in it is an error):

                          SYN_STREAM sent / received
                                     |
                                     v
                 send FIN       +---------+      receive FIN
           +--------------------|  OPEN   |--------------------+
           v                    +---------+                    v
    +-------------------+            |            +--------------------+
    | HALF_CLOSED_LOCAL |            | RST        | HALF_CLOSED_REMOTE |
    +-------------------+            | (either    +--------------------+
           | receive FIN             |  side)                | send FIN
           +-----------------> +---------+ <-----------------+
                               | CLOSED  |  (any state, RST sent or received)
                               +---------+

Flow control (SPDY/3.1 adds a session window to the per-stream windows): we account
both directions and send WINDOW_UPDATE as the application consumes data, so a peer that
honours windows never stalls on us. moby/spdystream (every Go client) neither sends
WINDOW_UPDATE nor honours ours, so our send windows are only enforced once the peer has
shown it does flow control (its first WINDOW_UPDATE); until then they are unlimited, and
windows the peer overruns are never treated as an error.

Errors (each carries the code that goes on the wire):

    SpdyError
     ├── ProtocolError        the session is unusable: send GOAWAY(code), close
     ├── StreamError          one stream is broken: RST_STREAM(stream_id, code), go on
     └── LocalProtocolError   this side called the API in a state that forbids it
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence

VERSION = 3

# --- wire constants ---------------------------------------------------------------------


class FrameType(enum.IntEnum):
    """Control frame types (SPDY/3 section 2.6; type 5 NOOP and 10 CREDENTIAL are unused)."""

    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    """RST_STREAM status codes (section 2.6.3)."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    """GOAWAY status codes (section 2.6.6)."""

    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(enum.IntEnum):
    """SETTINGS ids (section 2.6.4); only the window size and stream cap matter here."""

    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


FLAG_FIN = 0x01  # SYN_STREAM, SYN_REPLY, HEADERS, DATA: last frame from this side
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM: the recipient never sends on this stream
FLAG_CLEAR_SETTINGS = 0x01  # SETTINGS: forget persisted settings

DEFAULT_WINDOW_BYTES = 64 * 1024  # initial stream and session window (SPDY/3.1 2.6.8)
MAX_WINDOW_BYTES = 2**31 - 1
MAX_FRAME_LENGTH_BYTES = 2**24 - 1  # 24-bit length field
MAX_STREAM_ID = 2**31 - 1

# Hardening, after moby/spdystream v0.5.1 (CVE-2026-35469): header count and field caps.
MAX_HEADER_COUNT = 1000
MAX_HEADER_FIELD_BYTES = 1 << 20
# A header block never needs more than this once decompressed (Kubernetes sends ~100
# bytes); it bounds what a small compressed block may inflate to.
MAX_HEADER_BLOCK_BYTES = 4 << 20
# Control frames carry at most a compressed header block.
MAX_CONTROL_FRAME_BYTES = 1 << 20

_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")


# --- header compression dictionary (section 2.6.10.1) ---------------------------------------

# The spec's dictionary is these words, each preceded by its 32-bit length, followed by
# a run of status codes, reason phrases, dates and media types without length prefixes.
_DICTIONARY_WORDS = (
    *(  # noqa: SIM905 - the spec's list, readable as one run of words
        "options head post put delete trace accept accept-charset accept-encoding"
        " accept-language accept-ranges age allow authorization cache-control connection"
        " content-base content-encoding content-language content-length content-location"
        " content-md5 content-range content-type date etag expect expires from host if-match"
        " if-modified-since if-none-match if-range if-unmodified-since last-modified location"
        " max-forwards pragma proxy-authenticate proxy-authorization range referer"
        " retry-after server te trailer transfer-encoding upgrade user-agent vary via warning"
        " www-authenticate method get status"
    ).split(),
    *("200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"),
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
    "505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon,"
    " Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
HEADER_DICTIONARY = b"".join(
    _U32.pack(len(word)) + word.encode("ascii") for word in _DICTIONARY_WORDS
) + _DICTIONARY_TAIL.encode("ascii")
# zlib's dictionary id (Adler-32) of the dictionary above; a first header block carries it.
HEADER_DICTIONARY_ID = 0xE3C6A7C2
assert zlib.adler32(HEADER_DICTIONARY) == HEADER_DICTIONARY_ID, "SPDY/3 dictionary corrupt"


# --- errors -----------------------------------------------------------------------------------


class SpdyError(Exception):
    """Root of the SPDY errors."""


class ProtocolError(SpdyError):
    """The peer broke the session; `code` goes into our GOAWAY."""

    def __init__(self, message: str, code: GoAwayStatus = GoAwayStatus.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class StreamError(SpdyError):
    """The peer broke one stream; `code` goes into our RST_STREAM for `stream_id`."""

    def __init__(self, message: str, stream_id: int, code: RstStatus) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


class LocalProtocolError(SpdyError):
    """This side asked for something the protocol state forbids (a bug in the caller)."""


# --- frames -----------------------------------------------------------------------------------

# Header names are lower-case; a value holding several values joins them with NUL.
Headers = Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class SynStream:
    """Opens a stream (section 2.6.1)."""

    stream_id: int
    headers: Headers
    associated_stream_id: int = 0
    priority: int = 0  # 0 (highest) to 7
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclasses.dataclass(frozen=True)
class SynReply:
    """Accepts a stream (section 2.6.2)."""

    stream_id: int
    headers: Headers
    fin: bool = False


@dataclasses.dataclass(frozen=True)
class RstStream:
    """Aborts a stream (section 2.6.3)."""

    stream_id: int
    status: int


@dataclasses.dataclass(frozen=True)
class Settings:
    """Session parameters (section 2.6.4): id -> value; per-entry flags are not kept."""

    values: Mapping[int, int]
    clear: bool = False


@dataclasses.dataclass(frozen=True)
class Ping:
    """A round-trip probe (section 2.6.5): the receiver echoes the peer's ids."""

    ping_id: int


@dataclasses.dataclass(frozen=True)
class GoAway:
    """The sender takes no new streams above `last_good_stream_id` (section 2.6.6)."""

    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclasses.dataclass(frozen=True)
class HeadersFrame:
    """More headers for an open stream (section 2.6.7)."""

    stream_id: int
    headers: Headers
    fin: bool = False


@dataclasses.dataclass(frozen=True)
class WindowUpdate:
    """Flow-control credit (section 2.6.8); stream 0 is the session window (SPDY/3.1)."""

    stream_id: int
    delta_bytes: int


@dataclasses.dataclass(frozen=True)
class Data:
    """Stream payload (section 2.2.2)."""

    stream_id: int
    data: bytes
    fin: bool = False


Frame = (
    SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data
)


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of header `name` (lower-case), as Go's `http.Header.Get`."""
    value = headers.get(name)
    return None if value is None else value.split("\0", 1)[0]


# --- header blocks ----------------------------------------------------------------------------


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: count, then length-prefixed names and values."""
    parts = [_U32.pack(len(headers))]
    for name, value in headers.items():
        raw_name = name.lower().encode("utf-8")
        raw_value = value.encode("utf-8")
        parts += (_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value)
    return b"".join(parts)


def parse_header_block(block: bytes, stream_id: int) -> dict[str, str]:
    """Parse an uncompressed block; raise `StreamError` for bad names, `ProtocolError` if torn."""
    view = memoryview(block)
    pos = 0

    def take_u32() -> int:
        nonlocal pos
        if pos + 4 > len(view):
            raise ProtocolError(f"stream {stream_id}: header block truncated")
        (value,) = _U32.unpack_from(view, pos)
        pos += 4
        return int(value)

    def take_bytes(length: int) -> bytes:
        nonlocal pos
        if length > MAX_HEADER_FIELD_BYTES:
            raise StreamError(
                f"stream {stream_id}: header field of {length} bytes exceeds the limit",
                stream_id,
                RstStatus.FRAME_TOO_LARGE,
            )
        if pos + length > len(view):
            raise ProtocolError(f"stream {stream_id}: header block truncated")
        raw = bytes(view[pos : pos + length])
        pos += length
        return raw

    count = take_u32()
    if count > MAX_HEADER_COUNT:
        raise StreamError(
            f"stream {stream_id}: {count} headers exceed the limit of {MAX_HEADER_COUNT}",
            stream_id,
            RstStatus.FRAME_TOO_LARGE,
        )
    headers: dict[str, str] = {}
    problem = ""
    for _ in range(count):
        name = take_bytes(take_u32()).decode("utf-8", "replace")
        value = take_bytes(take_u32()).decode("utf-8", "replace")
        # Section 2.6.10: names are lower-case and unique, never empty.
        if not name:
            problem = problem or "empty header name"
        elif name != name.lower():
            problem = problem or f"header name {name!r} is not lower-case"
        elif name in headers:
            problem = problem or f"duplicate header {name!r}"
        headers[name] = value
    if pos != len(view):
        raise ProtocolError(f"stream {stream_id}: {len(view) - pos} bytes after the header block")
    if problem:
        raise StreamError(f"stream {stream_id}: {problem}", stream_id, RstStatus.PROTOCOL_ERROR)
    return headers


class HeaderCompressor:
    """The sending direction's zlib context: one per session, sync-flushed per block."""

    def __init__(self) -> None:
        # Level 9 as spdystream (zlib.BestCompression); any level is wire-compatible.
        self._zlib = zlib.compressobj(level=9, zdict=HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        """One compressed header block (every block, even an empty one, goes through here)."""
        block = encode_header_block(headers)
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving direction's zlib context: one per session."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(15, zdict=HEADER_DICTIONARY)

    def decompress(self, compressed: bytes) -> bytes:
        """Inflate one block; a block beyond `MAX_HEADER_BLOCK_BYTES` breaks the session."""
        try:
            block = self._zlib.decompress(compressed, MAX_HEADER_BLOCK_BYTES + 1)
        except zlib.error as err:
            raise ProtocolError(f"header block does not decompress: {err}") from None
        if len(block) > MAX_HEADER_BLOCK_BYTES or self._zlib.unconsumed_tail:
            raise ProtocolError(f"header block exceeds {MAX_HEADER_BLOCK_BYTES} bytes")
        return block


# --- encoding ---------------------------------------------------------------------------------


def _control(frame_type: FrameType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH_BYTES:
        raise LocalProtocolError(f"{frame_type.name} payload of {len(payload)} bytes is too large")
    return (
        _HEADER.pack(0x80000000 | VERSION << 16 | frame_type, flags << 24 | len(payload)) + payload
    )


def _check_stream_id(stream_id: int, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= stream_id <= MAX_STREAM_ID:
        raise LocalProtocolError(f"stream id {stream_id} is out of range")


def encode_frame(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """The wire bytes of `frame`; header blocks go through `compressor` in call order."""
    match frame:
        case Data(stream_id, data, fin):
            _check_stream_id(stream_id)
            if len(data) > MAX_FRAME_LENGTH_BYTES:
                raise LocalProtocolError(f"data frame of {len(data)} bytes is too large")
            return _HEADER.pack(stream_id, (FLAG_FIN if fin else 0) << 24 | len(data)) + data
        case SynStream():
            _check_stream_id(frame.stream_id)
            flags = (FLAG_FIN if frame.fin else 0) | (
                FLAG_UNIDIRECTIONAL if frame.unidirectional else 0
            )
            head = _U32_PAIR.pack(frame.stream_id, frame.associated_stream_id)
            prio = bytes(((frame.priority & 0x7) << 5, frame.slot))
            block = compressor.compress(frame.headers)
            return _control(FrameType.SYN_STREAM, flags, head + prio + block)
        case SynReply(stream_id, headers, fin):
            _check_stream_id(stream_id)
            block = compressor.compress(headers)
            return _control(
                FrameType.SYN_REPLY, FLAG_FIN if fin else 0, _U32.pack(stream_id) + block
            )
        case HeadersFrame(stream_id, headers, fin):
            _check_stream_id(stream_id)
            block = compressor.compress(headers)
            return _control(FrameType.HEADERS, FLAG_FIN if fin else 0, _U32.pack(stream_id) + block)
        case RstStream(stream_id, status):
            _check_stream_id(stream_id)
            return _control(FrameType.RST_STREAM, 0, _U32_PAIR.pack(stream_id, status))
        case Settings(values, clear):
            entries = b"".join(
                _U32_PAIR.pack(setting_id & 0xFFFFFF, value) for setting_id, value in values.items()
            )
            payload = _U32.pack(len(values)) + entries
            return _control(FrameType.SETTINGS, FLAG_CLEAR_SETTINGS if clear else 0, payload)
        case Ping(ping_id):
            return _control(FrameType.PING, 0, _U32.pack(ping_id))
        case GoAway(last_good_stream_id, status):
            _check_stream_id(last_good_stream_id, allow_zero=True)
            return _control(FrameType.GOAWAY, 0, _U32_PAIR.pack(last_good_stream_id, status))
        case WindowUpdate(stream_id, delta_bytes):
            _check_stream_id(stream_id, allow_zero=True)
            if not 1 <= delta_bytes <= MAX_WINDOW_BYTES:
                raise LocalProtocolError(f"window delta {delta_bytes} is out of range")
            return _control(FrameType.WINDOW_UPDATE, 0, _U32_PAIR.pack(stream_id, delta_bytes))
    raise LocalProtocolError(f"cannot encode {frame!r}")  # pragma: no cover


# --- decoding ---------------------------------------------------------------------------------

# Exact payload lengths of the fixed-size control frames, minimum lengths of the others.
_EXACT_LENGTH = {
    FrameType.RST_STREAM: 8,
    FrameType.PING: 4,
    FrameType.GOAWAY: 8,
    FrameType.WINDOW_UPDATE: 8,
}
_MIN_LENGTH = {FrameType.SYN_STREAM: 10, FrameType.SYN_REPLY: 4, FrameType.HEADERS: 4}


class FrameDecoder:
    """Reassembles frames from received bytes; one per session (it owns the inflate context)."""

    def __init__(self, max_control_frame_bytes: int = MAX_CONTROL_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._max_control = max_control_frame_bytes
        self._decompressor = HeaderDecompressor()

    def receive(self, data: bytes) -> None:
        """Append received bytes."""
        if self._pos and self._pos >= len(self._buffer) // 2:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet decoded into frames."""
        return len(self._buffer) - self._pos

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None when more bytes are needed.

        Unknown control frame types are skipped (section 2.2.1). Raises `ProtocolError`
        for a broken session and `StreamError` for a frame that breaks only its stream
        (the frame is consumed either way, so decoding can go on after a `StreamError`).
        """
        while True:
            available = len(self._buffer) - self._pos
            if available < 8:
                return None
            first, second = _HEADER.unpack_from(self._buffer, self._pos)
            flags, length = second >> 24, second & 0xFFFFFF
            control = bool(first & 0x80000000)
            if control and length > self._max_control:
                raise ProtocolError(f"control frame of {length} bytes exceeds {self._max_control}")
            if available < 8 + length:
                return None
            start = self._pos + 8
            payload = bytes(self._buffer[start : start + length])
            self._pos = start + length
            if not control:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise ProtocolError("data frame on stream 0")
                return Data(stream_id, payload, bool(flags & FLAG_FIN))
            version = (first >> 16) & 0x7FFF
            if version != VERSION:
                raise ProtocolError(f"unsupported SPDY version {version}")
            try:
                frame_type = FrameType(first & 0xFFFF)
            except ValueError:
                continue  # unknown control frame: ignore (section 2.2.1)
            return self._control(frame_type, flags, payload)

    def _headers(self, compressed: bytes, stream_id: int) -> dict[str, str]:
        # Always inflate, even when the frame will be rejected: the context must stay in
        # step with the sender's.
        return parse_header_block(self._decompressor.decompress(compressed), stream_id)

    def _control(self, frame_type: FrameType, flags: int, payload: bytes) -> Frame:
        length = len(payload)
        exact = _EXACT_LENGTH.get(frame_type)
        if exact is not None and length != exact:
            raise ProtocolError(f"{frame_type.name} frame with payload of {length} bytes")
        if length < _MIN_LENGTH.get(frame_type, 0):
            raise ProtocolError(f"{frame_type.name} frame with payload of {length} bytes")
        fin = bool(flags & FLAG_FIN)
        match frame_type:
            case FrameType.SYN_STREAM:
                stream_id, associated = _U32_PAIR.unpack_from(payload)
                stream_id &= 0x7FFFFFFF
                headers = self._headers(payload[10:], stream_id)
                if stream_id == 0:
                    raise ProtocolError("SYN_STREAM for stream 0")
                return SynStream(
                    stream_id,
                    headers,
                    associated_stream_id=associated & 0x7FFFFFFF,
                    priority=payload[8] >> 5,
                    slot=payload[9],
                    fin=fin,
                    unidirectional=bool(flags & FLAG_UNIDIRECTIONAL),
                )
            case FrameType.SYN_REPLY | FrameType.HEADERS:
                stream_id = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
                headers = self._headers(payload[4:], stream_id)
                if stream_id == 0:
                    raise ProtocolError(f"{frame_type.name} for stream 0")
                if frame_type is FrameType.SYN_REPLY:
                    return SynReply(stream_id, headers, fin)
                return HeadersFrame(stream_id, headers, fin)
            case FrameType.RST_STREAM:
                stream_id, status = _U32_PAIR.unpack(payload)
                stream_id &= 0x7FFFFFFF
                if stream_id == 0:
                    raise ProtocolError("RST_STREAM for stream 0")
                return RstStream(stream_id, status)
            case FrameType.SETTINGS:
                (count,) = _U32.unpack_from(payload)
                if length != 4 + 8 * count:
                    raise ProtocolError(f"SETTINGS with {count} entries in {length} bytes")
                values = {}
                for i in range(count):
                    flag_id, value = _U32_PAIR.unpack_from(payload, 4 + 8 * i)
                    values[flag_id & 0xFFFFFF] = value
                return Settings(values, clear=bool(flags & FLAG_CLEAR_SETTINGS))
            case FrameType.PING:
                return Ping(_U32.unpack(payload)[0])
            case FrameType.GOAWAY:
                last_good, status = _U32_PAIR.unpack(payload)
                return GoAway(last_good & 0x7FFFFFFF, status)
            case FrameType.WINDOW_UPDATE:
                stream_id, delta = _U32_PAIR.unpack(payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        raise ProtocolError(f"unhandled frame type {frame_type}")  # pragma: no cover


# --- events -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StreamOpened:
    """The peer opened `stream_id`; the server answers with `send_reply` or `reset_stream`."""

    stream_id: int
    headers: Headers
    associated_stream_id: int = 0
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class StreamReplied:
    """The peer accepted a stream we opened."""

    stream_id: int
    headers: Headers


@dataclasses.dataclass(frozen=True)
class HeadersReceived:
    """Extra headers on an open stream."""

    stream_id: int
    headers: Headers


@dataclasses.dataclass(frozen=True)
class DataReceived:
    """Payload for `stream_id`; call `acknowledge_received_data` once it is consumed."""

    stream_id: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class StreamEnded:
    """The peer half-closed `stream_id` (FIN): it sends nothing more on it."""

    stream_id: int


@dataclasses.dataclass(frozen=True)
class StreamReset:
    """`stream_id` is closed abruptly; `remote` says who sent the RST_STREAM."""

    stream_id: int
    status: int
    remote: bool = True


@dataclasses.dataclass(frozen=True)
class PingReceived:
    """The peer pinged us; the echo is already queued."""

    ping_id: int


@dataclasses.dataclass(frozen=True)
class PingAcknowledged:
    """The peer echoed one of our pings."""

    ping_id: int


@dataclasses.dataclass(frozen=True)
class SettingsReceived:
    """The peer changed session parameters (already applied)."""

    values: Mapping[int, int]


@dataclasses.dataclass(frozen=True)
class GoAwayReceived:
    """The peer takes no new streams; streams we opened above `last_good_stream_id` are gone."""

    last_good_stream_id: int
    status: int


@dataclasses.dataclass(frozen=True)
class WindowUpdated:
    """The peer granted send credit; stream 0 means the session window."""

    stream_id: int
    delta_bytes: int


Event = (
    StreamOpened
    | StreamReplied
    | HeadersReceived
    | DataReceived
    | StreamEnded
    | StreamReset
    | PingReceived
    | PingAcknowledged
    | SettingsReceived
    | GoAwayReceived
    | WindowUpdated
)


# --- the connection -----------------------------------------------------------------------------


class Role(enum.Enum):
    """Which end of the session we are: clients open odd streams, servers even ones."""

    CLIENT = "client"
    SERVER = "server"


class StreamState(enum.Enum):
    """Section 2.3 stream states (see the diagram at the top of the module)."""

    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"
    HALF_CLOSED_REMOTE = "half-closed (remote)"
    CLOSED = "closed"


class StreamInput(enum.Enum):
    """What happens to a stream."""

    SEND_FRAME = "send frame"  # SYN_REPLY, HEADERS or DATA from us
    RECV_FRAME = "receive frame"  # SYN_REPLY, HEADERS or DATA from the peer
    SEND_FIN = "send FIN"
    RECV_FIN = "receive FIN"
    SEND_RST = "send RST_STREAM"
    RECV_RST = "receive RST_STREAM"


_S = StreamState
_I = StreamInput

# The whole stream state machine: (state, input) -> next state. Pairs not listed are
# protocol violations.
STREAM_TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (_S.OPEN, _I.SEND_FRAME): _S.OPEN,
    (_S.OPEN, _I.RECV_FRAME): _S.OPEN,
    (_S.OPEN, _I.SEND_FIN): _S.HALF_CLOSED_LOCAL,
    (_S.OPEN, _I.RECV_FIN): _S.HALF_CLOSED_REMOTE,
    (_S.OPEN, _I.SEND_RST): _S.CLOSED,
    (_S.OPEN, _I.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_FRAME): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_FIN): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_FRAME): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_FIN): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.RECV_RST): _S.CLOSED,
}


def can_send(state: StreamState) -> bool:
    """Whether this side may still send on a stream in `state`."""
    return (state, StreamInput.SEND_FRAME) in STREAM_TRANSITIONS


def can_receive(state: StreamState) -> bool:
    """Whether the peer may still send on a stream in `state`."""
    return (state, StreamInput.RECV_FRAME) in STREAM_TRANSITIONS


@dataclasses.dataclass
class _Stream:
    stream_id: int
    state: StreamState
    locally_opened: bool
    # Streams the peer opened must get our SYN_REPLY before we send anything else;
    # streams we opened must get the peer's before it sends data.
    replied: bool
    send_window: int
    recv_window: int
    unacknowledged_bytes: int = 0


class SpdyConnection:
    """One SPDY/3.1 session, either end; feed it bytes, act on events, send its bytes."""

    def __init__(self, role: Role, max_concurrent_streams: int = 1024) -> None:
        self.role = role
        self.max_concurrent_streams = max_concurrent_streams
        self._decoder = FrameDecoder()
        self._compressor = HeaderCompressor()
        self._out: list[bytes] = []
        self._streams: dict[int, _Stream] = {}
        # Section 2.3.2 / 2.6.5: clients use odd stream and ping ids, servers even ones.
        self._parity = 1 if role is Role.CLIENT else 0
        self._next_stream_id = 1 if role is Role.CLIENT else 2
        self._next_ping_id = self._next_stream_id
        self._outstanding_pings: set[int] = set()
        # Highest stream id the peer opened (and we accepted); GOAWAY reports it.
        self._last_remote_stream_id = 0
        self._highest_remote_stream_id = 0
        self._peer_initial_window = DEFAULT_WINDOW_BYTES
        self._peer_max_concurrent_streams: int | None = None
        self._session_send_window = DEFAULT_WINDOW_BYTES
        self._session_recv_window = DEFAULT_WINDOW_BYTES
        self._session_unacknowledged = 0
        # See the module docstring: windows are enforced once the peer shows it uses them.
        self.peer_uses_flow_control = False
        self.going_away = False  # we sent GOAWAY
        self.peer_going_away = False  # we received GOAWAY
        self.closed = False  # a ProtocolError ended the session

    # -- queries ---------------------------------------------------------------------------

    def stream_state(self, stream_id: int) -> StreamState:
        """The state of `stream_id` (CLOSED once forgotten or never opened)."""
        stream = self._streams.get(stream_id)
        return stream.state if stream else StreamState.CLOSED

    @property
    def open_stream_count(self) -> int:
        """Streams not yet closed."""
        return len(self._streams)

    def send_window(self, stream_id: int) -> int | None:
        """Bytes we may send on `stream_id` now; None when the peer does no flow control."""
        if not self.peer_uses_flow_control:
            return None
        stream = self._streams.get(stream_id)
        stream_window = stream.send_window if stream else 0
        return max(0, min(stream_window, self._session_send_window))

    def data_to_send(self) -> bytes:
        """Bytes queued for the peer, in order."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- sending -------------------------------------------------------------------------------

    def _emit(self, frame: Frame) -> None:
        self._out.append(encode_frame(frame, self._compressor))

    def _transition(self, stream: _Stream, event: StreamInput) -> None:
        next_state = STREAM_TRANSITIONS.get((stream.state, event))
        if next_state is None:
            raise LocalProtocolError(
                f"stream {stream.stream_id}: cannot {event.value} when {stream.state.value}"
            )
        stream.state = next_state
        if next_state is StreamState.CLOSED:
            self._streams.pop(stream.stream_id, None)

    def _require(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise LocalProtocolError(f"stream {stream_id} is not open")
        return stream

    def open_stream(self, headers: Headers, *, fin: bool = False, priority: int = 0) -> int:
        """Send SYN_STREAM; returns the new stream id."""
        if self.going_away or self.peer_going_away or self.closed:
            raise LocalProtocolError("the session is going away: no new streams")
        cap = self._peer_max_concurrent_streams
        if cap is not None and sum(s.locally_opened for s in self._streams.values()) >= cap:
            raise LocalProtocolError(f"the peer allows only {cap} concurrent streams")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise LocalProtocolError("stream ids exhausted: open a new session")
        self._next_stream_id += 2
        stream = _Stream(
            stream_id,
            StreamState.OPEN,
            locally_opened=True,
            replied=False,
            send_window=self._peer_initial_window,
            recv_window=DEFAULT_WINDOW_BYTES,
        )
        self._streams[stream_id] = stream
        self._emit(SynStream(stream_id, headers, priority=priority, fin=fin))
        if fin:
            self._transition(stream, StreamInput.SEND_FIN)
        return stream_id

    def send_reply(
        self, stream_id: int, headers: Headers | None = None, *, fin: bool = False
    ) -> None:
        """Accept a stream the peer opened (SYN_REPLY)."""
        stream = self._require(stream_id)
        if stream.locally_opened or stream.replied:
            raise LocalProtocolError(f"stream {stream_id}: SYN_REPLY not expected")
        self._transition(stream, StreamInput.SEND_FRAME)
        stream.replied = True
        self._emit(SynReply(stream_id, headers or {}, fin))
        if fin:
            self._transition(stream, StreamInput.SEND_FIN)

    def send_headers(self, stream_id: int, headers: Headers, *, fin: bool = False) -> None:
        """Send a HEADERS frame on an open stream."""
        stream = self._require(stream_id)
        self._check_replied(stream)
        self._transition(stream, StreamInput.SEND_FRAME)
        self._emit(HeadersFrame(stream_id, headers, fin))
        if fin:
            self._transition(stream, StreamInput.SEND_FIN)

    def _check_replied(self, stream: _Stream) -> None:
        if not stream.locally_opened and not stream.replied:
            raise LocalProtocolError(f"stream {stream.stream_id}: send SYN_REPLY first")

    def send_data(
        self, stream_id: int, data: bytes, *, fin: bool = False, max_frame_bytes: int = 1 << 16
    ) -> None:
        """Send `data` (split into frames of `max_frame_bytes`), optionally ending the stream.

        When the peer does flow control, `data` must fit in `send_window(stream_id)`.
        """
        stream = self._require(stream_id)
        self._check_replied(stream)
        if (stream.state, StreamInput.SEND_FRAME) not in STREAM_TRANSITIONS:
            raise LocalProtocolError(f"stream {stream_id}: cannot send when {stream.state.value}")
        window = self.send_window(stream_id)
        if window is not None and len(data) > window:
            raise LocalProtocolError(
                f"stream {stream_id}: {len(data)} bytes exceed the send window of {window}"
            )
        stream.send_window -= len(data)
        self._session_send_window -= len(data)
        view = memoryview(data)
        for offset in range(0, len(data), max_frame_bytes):
            chunk = bytes(view[offset : offset + max_frame_bytes])
            last = offset + max_frame_bytes >= len(data)
            self._emit(Data(stream_id, chunk, fin and last))
        if not data and fin:
            self._emit(Data(stream_id, b"", fin))
        if fin:
            self._transition(stream, StreamInput.SEND_FIN)

    def end_stream(self, stream_id: int) -> None:
        """Half-close our side of `stream_id` (an empty DATA frame with FIN)."""
        self.send_data(stream_id, b"", fin=True)

    def reset_stream(self, stream_id: int, status: RstStatus = RstStatus.CANCEL) -> None:
        """Abort `stream_id` with RST_STREAM; a stream already closed is left alone."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        self._transition(stream, StreamInput.SEND_RST)
        self._emit(RstStream(stream_id, status))

    def ping(self) -> int:
        """Send a PING; `PingAcknowledged` reports the echo. Returns the ping id."""
        ping_id = self._next_ping_id
        self._next_ping_id = ping_id + 2 if ping_id + 2 <= 0xFFFFFFFF else 2 - self._parity
        self._outstanding_pings.add(ping_id)
        self._emit(Ping(ping_id))
        return ping_id

    def go_away(self, status: GoAwayStatus = GoAwayStatus.OK) -> None:
        """Send GOAWAY: no new streams; those already accepted carry on."""
        if self.going_away:
            return
        self.going_away = True
        self._emit(GoAway(self._last_remote_stream_id, status))

    def acknowledge_received_data(self, stream_id: int, consumed_bytes: int) -> None:
        """The application consumed `consumed_bytes` of `stream_id`: grant the peer credit.

        WINDOW_UPDATE goes out once half a window is consumed (for the stream and for the
        session), as SPDY/3.1 peers expect.
        """
        if consumed_bytes <= 0:
            return
        stream = self._streams.get(stream_id)
        if stream is not None and can_receive(stream.state):
            stream.unacknowledged_bytes += consumed_bytes
            if stream.unacknowledged_bytes >= DEFAULT_WINDOW_BYTES // 2:
                delta = min(
                    stream.unacknowledged_bytes, MAX_WINDOW_BYTES - max(stream.recv_window, 0)
                )
                if delta > 0:
                    stream.recv_window += delta
                    self._emit(WindowUpdate(stream_id, delta))
                stream.unacknowledged_bytes = 0
        self._acknowledge_session(consumed_bytes)

    def _acknowledge_session(self, consumed_bytes: int) -> None:
        self._session_unacknowledged += consumed_bytes
        if self._session_unacknowledged >= DEFAULT_WINDOW_BYTES // 2:
            delta = min(
                self._session_unacknowledged,
                MAX_WINDOW_BYTES - max(self._session_recv_window, 0),
            )
            if delta > 0:
                self._session_recv_window += delta
                self._emit(WindowUpdate(0, delta))
            self._session_unacknowledged = 0

    # -- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns the events they complete.

        A `ProtocolError` ends the session: GOAWAY with its code is queued, then it is
        raised (send `data_to_send()` and close). Stream-level errors are answered with
        RST_STREAM here and never raised.
        """
        if self.closed:
            return []
        self._decoder.receive(data)
        events: list[Event] = []
        try:
            while True:
                try:
                    frame = self._decoder.next_frame()
                    if frame is None:
                        return events
                    self._receive_frame(frame, events)
                except StreamError as err:
                    if self._reject(err):
                        events.append(StreamReset(err.stream_id, err.code, remote=False))
        except ProtocolError as err:
            self.closed = True
            if not self.going_away:
                self.going_away = True
                self._emit(GoAway(self._last_remote_stream_id, err.code))
            raise

    def _reject(self, err: StreamError) -> bool:
        """Answer a stream error with RST_STREAM; True if the stream was open here."""
        stream = self._streams.pop(err.stream_id, None)
        if stream is not None:
            stream.state = StreamState.CLOSED
        self._emit(RstStream(err.stream_id, err.code))
        return stream is not None

    def _receive_frame(self, frame: Frame, events: list[Event]) -> None:
        match frame:
            case Data():
                self._receive_data_frame(frame, events)
            case SynStream():
                self._receive_syn_stream(frame, events)
            case SynReply(stream_id, headers, fin):
                stream = self._stream_for_frame(stream_id)
                if stream is None:
                    return
                if not stream.locally_opened:
                    raise StreamError(
                        f"stream {stream_id}: SYN_REPLY for a stream we did not open",
                        stream_id,
                        RstStatus.PROTOCOL_ERROR,
                    )
                if stream.replied:
                    raise StreamError(
                        f"stream {stream_id}: second SYN_REPLY", stream_id, RstStatus.STREAM_IN_USE
                    )
                self._receive_on(stream, fin)
                stream.replied = True
                events.append(StreamReplied(stream_id, headers))
                if fin:
                    events.append(StreamEnded(stream_id))
            case HeadersFrame(stream_id, headers, fin):
                stream = self._stream_for_frame(stream_id)
                if stream is None:
                    return
                self._receive_on(stream, fin)
                events.append(HeadersReceived(stream_id, headers))
                if fin:
                    events.append(StreamEnded(stream_id))
            case RstStream(stream_id, status):
                stream = self._streams.get(stream_id)
                if stream is None:
                    return  # already closed here: nothing to do
                self._transition(stream, StreamInput.RECV_RST)
                events.append(StreamReset(stream_id, status, remote=True))
            case Settings(values):
                self._receive_settings(values)
                events.append(SettingsReceived(values))
            case Ping(ping_id):
                if ping_id == 0:
                    return
                if ping_id % 2 != self._parity:
                    # The peer's ping (its parity differs from ours): echo it at once.
                    self._emit(Ping(ping_id))
                    events.append(PingReceived(ping_id))
                elif ping_id in self._outstanding_pings:
                    self._outstanding_pings.discard(ping_id)
                    events.append(PingAcknowledged(ping_id))
            case GoAway(last_good, status):
                self.peer_going_away = True
                for stream_id in [s for s, st in self._streams.items() if st.locally_opened]:
                    if stream_id > last_good:
                        del self._streams[stream_id]
                        events.append(StreamReset(stream_id, RstStatus.REFUSED_STREAM, remote=True))
                events.append(GoAwayReceived(last_good, status))
            case WindowUpdate(stream_id, delta):
                self._receive_window_update(stream_id, delta, events)

    def _stream_for_frame(self, stream_id: int) -> _Stream | None:
        """The open stream a frame is for; None for one closed earlier (frames in flight)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        if self._is_local_id(stream_id):
            if stream_id < self._next_stream_id:
                return None
        elif stream_id <= self._highest_remote_stream_id:
            return None
        raise StreamError(
            f"stream {stream_id} was never opened", stream_id, RstStatus.INVALID_STREAM
        )

    def _is_local_id(self, stream_id: int) -> bool:
        return stream_id % 2 == self._parity

    def _receive_on(self, stream: _Stream, fin: bool) -> None:
        if (stream.state, StreamInput.RECV_FRAME) not in STREAM_TRANSITIONS:
            raise StreamError(
                f"stream {stream.stream_id}: frame after the peer's FIN",
                stream.stream_id,
                RstStatus.STREAM_ALREADY_CLOSED,
            )
        self._transition(stream, StreamInput.RECV_FRAME)
        if fin:
            self._transition(stream, StreamInput.RECV_FIN)

    def _receive_data_frame(self, frame: Data, events: list[Event]) -> None:
        # Session-level accounting first: the bytes crossed the session either way.
        self._session_recv_window -= len(frame.data)
        stream = self._stream_for_frame(frame.stream_id)
        if stream is None:
            # Data for a stream closed here: give its credit back so the session flows.
            self._acknowledge_session(len(frame.data))
            return
        if stream.locally_opened and not stream.replied:
            raise StreamError(
                f"stream {frame.stream_id}: data before SYN_REPLY",
                frame.stream_id,
                RstStatus.PROTOCOL_ERROR,
            )
        self._receive_on(stream, frame.fin)
        # Overruns are not errors: spdystream ignores our windows (module docstring).
        stream.recv_window -= len(frame.data)
        if frame.data:
            events.append(DataReceived(frame.stream_id, frame.data))
        if frame.fin:
            events.append(StreamEnded(frame.stream_id))

    def _receive_syn_stream(self, frame: SynStream, events: list[Event]) -> None:
        stream_id = frame.stream_id
        if self._is_local_id(stream_id):
            raise StreamError(
                f"stream {stream_id}: the peer may not open streams of our parity",
                stream_id,
                RstStatus.PROTOCOL_ERROR,
            )
        if stream_id <= self._highest_remote_stream_id:
            # Section 2.3.2: stream ids increase monotonically.
            raise StreamError(
                f"stream {stream_id}: id not above {self._highest_remote_stream_id}",
                stream_id,
                RstStatus.PROTOCOL_ERROR,
            )
        self._highest_remote_stream_id = stream_id
        if self.going_away:
            raise StreamError(
                f"stream {stream_id}: the session is going away",
                stream_id,
                RstStatus.REFUSED_STREAM,
            )
        if len(self._streams) >= self.max_concurrent_streams:
            raise StreamError(
                f"stream {stream_id}: more than {self.max_concurrent_streams} concurrent streams",
                stream_id,
                RstStatus.REFUSED_STREAM,
            )
        self._last_remote_stream_id = stream_id
        stream = _Stream(
            stream_id,
            StreamState.OPEN,
            locally_opened=False,
            replied=frame.unidirectional,
            send_window=self._peer_initial_window,
            recv_window=DEFAULT_WINDOW_BYTES,
        )
        self._streams[stream_id] = stream
        events.append(
            StreamOpened(stream_id, frame.headers, frame.associated_stream_id, frame.priority)
        )
        if frame.unidirectional:
            # Section 2.6.1: the recipient is half-closed from the start and never replies.
            self._transition(stream, StreamInput.SEND_FIN)
        if frame.fin:
            self._transition(stream, StreamInput.RECV_FIN)
            events.append(StreamEnded(stream_id))

    def _receive_settings(self, values: Mapping[int, int]) -> None:
        window = values.get(SettingId.INITIAL_WINDOW_SIZE)
        if window is not None:
            if window > MAX_WINDOW_BYTES:
                raise ProtocolError(f"SETTINGS initial window of {window} bytes")
            # Section 2.6.8: a new initial window adjusts every existing stream window.
            delta = window - self._peer_initial_window
            self._peer_initial_window = window
            for stream in self._streams.values():
                stream.send_window += delta
        cap = values.get(SettingId.MAX_CONCURRENT_STREAMS)
        if cap is not None:
            self._peer_max_concurrent_streams = cap

    def _receive_window_update(self, stream_id: int, delta: int, events: list[Event]) -> None:
        if stream_id == 0:
            if delta == 0:
                raise ProtocolError("session WINDOW_UPDATE of 0 bytes")
            if self._session_send_window + delta > MAX_WINDOW_BYTES:
                raise ProtocolError("session send window above 2^31-1")
            self._session_send_window += delta
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                return  # a stream closed meanwhile
            if delta == 0:
                raise StreamError(
                    f"stream {stream_id}: WINDOW_UPDATE of 0 bytes",
                    stream_id,
                    RstStatus.PROTOCOL_ERROR,
                )
            if stream.send_window + delta > MAX_WINDOW_BYTES:
                raise StreamError(
                    f"stream {stream_id}: send window above 2^31-1",
                    stream_id,
                    RstStatus.FLOW_CONTROL_ERROR,
                )
            stream.send_window += delta
        self.peer_uses_flow_control = True
        events.append(WindowUpdated(stream_id, delta))


def frames_of(data: bytes) -> Iterator[Frame]:
    """Decode a whole byte string into frames (tests and debugging)."""
    decoder = FrameDecoder()
    decoder.receive(data)
    while (frame := decoder.next_frame()) is not None:
        yield frame


__all__: Sequence[str] = (
    "VERSION",
    "FrameType",
    "RstStatus",
    "GoAwayStatus",
    "SettingId",
    "HEADER_DICTIONARY",
    "SpdyError",
    "ProtocolError",
    "StreamError",
    "LocalProtocolError",
    "SynStream",
    "SynReply",
    "RstStream",
    "Settings",
    "Ping",
    "GoAway",
    "HeadersFrame",
    "WindowUpdate",
    "Data",
    "Frame",
    "encode_frame",
    "FrameDecoder",
    "HeaderCompressor",
    "HeaderDecompressor",
    "header_value",
    "Role",
    "StreamState",
    "StreamInput",
    "STREAM_TRANSITIONS",
    "SpdyConnection",
    "StreamOpened",
    "StreamReplied",
    "HeadersReceived",
    "DataReceived",
    "StreamEnded",
    "StreamReset",
    "PingReceived",
    "PingAcknowledged",
    "SettingsReceived",
    "GoAwayReceived",
    "WindowUpdated",
    "Event",
)
