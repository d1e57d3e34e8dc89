"""SPDY/3 frames against bytes computed from the spec (draft 3, sections 2.2 and 2.6).

Expected bytes are built here field by field with struct, independently of the encoder;
header blocks are compressed and decompressed with zlib and the dictionary.
"""

from __future__ import annotations

import pathlib
import struct
import zlib

import pytest

from cri.streaming import spdy

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "streaming"


def control(frame_type: int, flags: int, payload: bytes) -> bytes:
    """Section 2.2.1: C bit, 15-bit version 3, 16-bit type, 8-bit flags, 24-bit length."""
    return struct.pack(">HHI", 0x8000 | 3, frame_type, flags << 24 | len(payload)) + payload


def raw_block(pairs: list[tuple[str, str]]) -> bytes:
    """Section 2.6.10: 32-bit count, then 32-bit length-prefixed names and values."""
    out = struct.pack(">I", len(pairs))
    for name, value in pairs:
        out += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value))
        out += value.encode()
    return out


def encode(frame: spdy.Frame) -> bytes:
    return spdy.encode_frame(frame, spdy.HeaderCompressor())


def test_dictionary_is_the_spec_dictionary() -> None:
    # Section 2.6.10.1: 1423 bytes; zlib's dictionary id is its Adler-32.
    assert len(spdy.HEADER_DICTIONARY) == 1423
    assert zlib.adler32(spdy.HEADER_DICTIONARY) == 0xE3C6A7C2
    assert spdy.HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (spdy.Ping(1), control(6, 0, struct.pack(">I", 1))),
        (spdy.Ping(0xFFFFFFFE), control(6, 0, b"\xff\xff\xff\xfe")),
        (
            spdy.RstStream(7, spdy.RstStatus.CANCEL),
            control(3, 0, struct.pack(">II", 7, 5)),
        ),
        (
            spdy.RstStream(3, spdy.RstStatus.FLOW_CONTROL_ERROR),
            control(3, 0, struct.pack(">II", 3, 7)),
        ),
        (spdy.GoAway(7, spdy.GoAwayStatus.OK), control(7, 0, struct.pack(">II", 7, 0))),
        (
            spdy.GoAway(0, spdy.GoAwayStatus.PROTOCOL_ERROR),
            control(7, 0, struct.pack(">II", 0, 1)),
        ),
        (spdy.WindowUpdate(5, 65536), control(9, 0, struct.pack(">II", 5, 65536))),
        (spdy.WindowUpdate(0, 2**31 - 1), control(9, 0, struct.pack(">II", 0, 2**31 - 1))),
        (
            spdy.Settings({spdy.SettingId.INITIAL_WINDOW_SIZE: 1 << 20}),
            control(4, 0, struct.pack(">III", 1, 7, 1 << 20)),
        ),
        (
            spdy.Settings({4: 100, 7: 65536}, clear=True),
            control(4, 1, struct.pack(">IIIII", 2, 4, 100, 7, 65536)),
        ),
        # Section 2.2.2: C bit 0, 31-bit stream id, flags (FIN 0x01), 24-bit length.
        (spdy.Data(3, b"hello"), struct.pack(">II", 3, 5) + b"hello"),
        (spdy.Data(3, b"", fin=True), struct.pack(">II", 3, 0x01000000)),
        (spdy.Data(2**31 - 1, b"x", fin=True), struct.pack(">II", 2**31 - 1, 0x01000001) + b"x"),
    ],
)
def test_fixed_frames_encode_as_the_spec_lays_them_out(frame: spdy.Frame, expected: bytes) -> None:
    assert encode(frame) == expected
    assert list(spdy.frames_of(expected)) == [frame]


def test_syn_stream_layout_and_compressed_headers() -> None:
    headers = {"streamtype": "error", "port": "8080", "requestid": "0"}
    wire = encode(spdy.SynStream(5, headers, associated_stream_id=0, priority=3, fin=True))
    first, second = struct.unpack_from(">II", wire)
    assert first == 0x80030001  # control, version 3, SYN_STREAM
    assert second >> 24 == spdy.FLAG_FIN
    assert second & 0xFFFFFF == len(wire) - 8
    stream_id, associated = struct.unpack_from(">II", wire, 8)
    assert (stream_id, associated) == (5, 0)
    assert wire[16] == 3 << 5  # 3-bit priority in the top bits
    assert wire[17] == 0  # slot
    block = wire[18:]
    # The first block of a session starts with a zlib header announcing the dictionary.
    assert block[:6] == bytes.fromhex("78f9e3c6a7c2")
    inflater = zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY)
    assert inflater.decompress(block) == raw_block(list(headers.items()))
    # A sync flush ends every block: nothing is held back.
    assert block.endswith(b"\x00\x00\xff\xff")


def test_one_compression_context_per_direction() -> None:
    compressor = spdy.HeaderCompressor()
    first = spdy.encode_frame(spdy.SynReply(1, {}), compressor)
    second = spdy.encode_frame(spdy.SynReply(3, {}), compressor)
    third = spdy.encode_frame(spdy.HeadersFrame(3, {"a": "b"}), compressor)
    blocks = [first[12:], second[12:], third[12:]]
    # Only the first block carries the zlib header; later ones continue the stream.
    assert blocks[0][:2] == b"\x78\xf9"
    assert blocks[1][:2] != b"\x78\xf9"
    inflater = zlib.decompressobj(zdict=spdy.HEADER_DICTIONARY)
    assert inflater.decompress(blocks[0]) == raw_block([])  # even empty blocks are compressed
    assert inflater.decompress(blocks[1]) == raw_block([])
    assert inflater.decompress(blocks[2]) == raw_block([("a", "b")])
    # Our decoder keeps one inflate context the same way.
    assert list(spdy.frames_of(first + second + third)) == [
        spdy.SynReply(1, {}),
        spdy.SynReply(3, {}),
        spdy.HeadersFrame(3, {"a": "b"}),
    ]


def test_decoder_reads_headers_compressed_by_zlib_with_the_dictionary() -> None:
    deflater = zlib.compressobj(level=6, zdict=spdy.HEADER_DICTIONARY)
    frames = b""
    for stream_id, kind in ((1, "error"), (3, "stdout")):
        block = deflater.compress(raw_block([("streamtype", kind)]))
        block += deflater.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + block
        frames += control(1, 0, payload)
    assert list(spdy.frames_of(frames)) == [
        spdy.SynStream(1, {"streamtype": "error"}),
        spdy.SynStream(3, {"streamtype": "stdout"}),
    ]


def test_multiple_values_are_nul_joined() -> None:
    wire = encode(spdy.SynReply(1, {"x-multi": "a\0b"}))
    (frame,) = spdy.frames_of(wire)
    assert isinstance(frame, spdy.SynReply)
    assert spdy.header_value(frame.headers, "x-multi") == "a"
    assert frame.headers["x-multi"].split("\0") == ["a", "b"]


def test_decoder_waits_for_whole_frames_byte_by_byte() -> None:
    compressor = spdy.HeaderCompressor()
    frames = [
        spdy.SynStream(1, {"streamtype": "stdin"}),
        spdy.Data(1, b"x" * 1000),
        spdy.Ping(1),
        spdy.Data(1, b"", fin=True),
    ]
    wire = b"".join(spdy.encode_frame(f, compressor) for f in frames)
    decoder = spdy.FrameDecoder()
    got = []
    for byte in wire:
        decoder.receive(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            got.append(frame)
    assert got == frames
    assert decoder.buffered_bytes == 0


def test_unknown_control_frame_types_are_skipped() -> None:
    # Section 2.2.1: ignore unknown types (5 was NOOP, 10 CREDENTIAL).
    wire = control(5, 0, b"") + control(10, 0, b"abcd") + encode(spdy.Ping(3))
    assert list(spdy.frames_of(wire)) == [spdy.Ping(3)]


@pytest.mark.parametrize(
    "wire",
    [
        control(6, 0, b"\x00\x00\x00"),  # PING payload must be 4 bytes
        control(3, 0, struct.pack(">I", 1)),  # RST_STREAM must be 8 bytes
        control(7, 0, struct.pack(">IIB", 1, 0, 0)),  # GOAWAY must be 8 bytes
        control(4, 0, struct.pack(">II", 2, 7)),  # SETTINGS count beyond its payload
        struct.pack(">II", 0, 1) + b"x",  # data on stream 0
        struct.pack(">HHI", 0x8000 | 2, 6, 4) + b"\x00\x00\x00\x01",  # SPDY/2
        control(1, 0, struct.pack(">IIBB", 1, 0, 0, 0) + b"not zlib"),
    ],
)
def test_malformed_frames_break_the_session(wire: bytes) -> None:
    with pytest.raises(spdy.ProtocolError):
        list(spdy.frames_of(wire))


def test_oversized_control_frames_are_refused_before_buffering() -> None:
    decoder = spdy.FrameDecoder(max_control_frame_bytes=1024)
    decoder.receive(struct.pack(">HHI", 0x8003, 1, 2048))
    with pytest.raises(spdy.ProtocolError, match="exceeds"):
        decoder.next_frame()


def _syn_stream_with(pairs: list[tuple[str, str]], count: int | None = None) -> bytes:
    block = raw_block(pairs)
    if count is not None:
        block = struct.pack(">I", count) + block[4:]
    deflater = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
    compressed = deflater.compress(block) + deflater.flush(zlib.Z_SYNC_FLUSH)
    return control(1, 0, struct.pack(">IIBB", 9, 0, 0, 0) + compressed)


@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        ([("StreamType", "error")], spdy.RstStatus.PROTOCOL_ERROR),  # names are lower case
        ([("a", "1"), ("a", "2")], spdy.RstStatus.PROTOCOL_ERROR),  # no duplicates
        ([("", "x")], spdy.RstStatus.PROTOCOL_ERROR),
        ([("x", "y" * (spdy.MAX_HEADER_FIELD_BYTES + 1))], spdy.RstStatus.FRAME_TOO_LARGE),
    ],
)
def test_bad_header_blocks_break_only_their_stream(
    pairs: list[tuple[str, str]], code: spdy.RstStatus
) -> None:
    decoder = spdy.FrameDecoder(max_control_frame_bytes=1 << 22)
    decoder.receive(_syn_stream_with(pairs) + encode(spdy.Ping(1)))
    with pytest.raises(spdy.StreamError) as caught:
        decoder.next_frame()
    assert caught.value.stream_id == 9
    assert caught.value.code == code
    # The frame was consumed: decoding goes on.
    assert decoder.next_frame() == spdy.Ping(1)


def test_header_count_is_capped() -> None:
    decoder = spdy.FrameDecoder()
    decoder.receive(_syn_stream_with([], count=spdy.MAX_HEADER_COUNT + 1))
    with pytest.raises(spdy.StreamError) as caught:
        decoder.next_frame()
    assert caught.value.code == spdy.RstStatus.FRAME_TOO_LARGE


def test_decompression_bombs_are_refused() -> None:
    deflater = zlib.compressobj(zdict=spdy.HEADER_DICTIONARY)
    block = raw_block([("x", "a" * (spdy.MAX_HEADER_BLOCK_BYTES + 10))])
    compressed = deflater.compress(block) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(compressed) < 10_000
    decoder = spdy.FrameDecoder()
    decoder.receive(control(2, 0, struct.pack(">I", 1) + compressed))
    with pytest.raises(spdy.ProtocolError, match="exceeds"):
        decoder.next_frame()


def test_encoder_refuses_values_the_wire_cannot_carry() -> None:
    with pytest.raises(spdy.LocalProtocolError):
        encode(spdy.Data(0, b"x"))
    with pytest.raises(spdy.LocalProtocolError):
        encode(spdy.Data(1, b"x" * (spdy.MAX_FRAME_LENGTH_BYTES + 1)))
    with pytest.raises(spdy.LocalProtocolError):
        encode(spdy.WindowUpdate(1, 0))


def test_crictl_exec_capture_decodes() -> None:
    frames = list(spdy.frames_of((DATA_DIR / "crictl-exec-spdy.c2s").read_bytes()))
    assert frames == [
        spdy.SynStream(1, {"streamtype": "error"}),
        spdy.SynStream(3, {"streamtype": "stdin"}),
        spdy.SynStream(5, {"streamtype": "stdout"}),
        spdy.SynStream(7, {"streamtype": "stderr"}),
        spdy.Data(3, b"hello\n"),
        spdy.Data(3, b"", fin=True),
    ]


def test_crictl_port_forward_capture_decodes() -> None:
    frames = list(spdy.frames_of((DATA_DIR / "crictl-portforward-spdy.c2s").read_bytes()))
    assert frames[0] == spdy.SynStream(
        1, {"streamtype": "error", "port": "46597", "requestid": "0"}
    )
    assert frames[1] == spdy.Data(1, b"", fin=True)  # the client half-closes its error stream
    assert frames[2] == spdy.SynStream(3, {"streamtype": "data", "port": "46597", "requestid": "0"})
    assert frames[3:] == [
        spdy.Data(3, b"ping"),
        spdy.Data(3, b"", fin=True),
        spdy.Ping(1),  # client-go's 5 s keepalive: odd ids from the client
        spdy.GoAway(0, spdy.GoAwayStatus.OK),
    ]
