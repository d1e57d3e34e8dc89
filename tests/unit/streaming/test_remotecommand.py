"""The remote command protocol's status documents and resize decoding."""

from __future__ import annotations

import asyncio
import json

from cri.streaming.remotecommand import (
    Outcome,
    encode_status,
    exec_outcome,
    first_size,
    resize_events,
)
from cri.streaming.runtime import StreamClosedError, TerminalSize


def test_success_status() -> None:
    assert encode_status(Outcome(), json_status=True) == b'{"status":"Success"}'
    assert encode_status(Outcome(), json_status=False) == b""  # v1-v3: silence on success


def test_non_zero_exit_status_as_client_go_decodes_it() -> None:
    outcome = exec_outcome(3, ("sh", "-c", "exit 3"))
    document = json.loads(encode_status(outcome, json_status=True))
    assert document == {
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command"
        " [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    # v1-v3 clients get the message as plain text.
    assert encode_status(outcome, json_status=False).startswith(b"command terminated")


def test_exit_codes_are_normalised_to_a_byte() -> None:
    assert exec_outcome(0, ("true",)).success
    assert exec_outcome(-9, ("x",)).exit_code == 137  # killed by SIGKILL
    assert exec_outcome(256 + 2, ("x",)).exit_code == 2


def test_internal_error_status() -> None:
    document = json.loads(encode_status(Outcome(error="boom"), json_status=True))
    assert document == {
        "status": "Failure",
        "message": "Internal error occurred: boom",
        "reason": "InternalError",
        "code": 500,
    }


class Chunks:
    """An InputStream serving fixed chunks, then EOF or a reset."""

    def __init__(self, *chunks: bytes, reset: bool = False) -> None:
        self.chunks = list(chunks)
        self.reset = reset

    async def read(self, max_bytes: int = 65536) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.reset:
            raise StreamClosedError("reset")
        return b""


def sizes(stream: Chunks) -> list[TerminalSize]:
    async def collect() -> list[TerminalSize]:
        return [size async for size in resize_events(stream)]

    return asyncio.run(collect())


def test_resize_events_from_json_split_anywhere() -> None:
    stream = Chunks(b'{"Width":80,"Hei', b'ght":24}\n{"Width":100,', b'"Height":50}\n')
    assert sizes(stream) == [TerminalSize(80, 24), TerminalSize(100, 50)]


def test_resize_keys_match_case_insensitively_like_encoding_json() -> None:
    assert sizes(Chunks(b'{"width":1,"height":2} {"WIDTH":3}')) == [
        TerminalSize(1, 2),
        TerminalSize(3, 0),
    ]


def test_resize_stops_at_garbage_or_a_reset() -> None:
    assert sizes(Chunks(b'{"Width":1,"Height":1}', b"[1]", b'{"Width":2,"Height":2}')) == [
        TerminalSize(1, 1)
    ]
    assert sizes(Chunks(b'{"Width":70000,"Height":1}')) == []
    assert sizes(Chunks(b'{"Width":5,"Height":6}', reset=True)) == [TerminalSize(5, 6)]


class Slow:
    """An InputStream whose single chunk arrives after `delay_s`."""

    def __init__(self, chunk: bytes, delay_s: float) -> None:
        self.chunk = chunk
        self.delay_s = delay_s

    async def read(self, max_bytes: int = 65536) -> bytes:
        if not self.chunk:
            return b""
        await asyncio.sleep(self.delay_s)
        chunk, self.chunk = self.chunk, b""
        return chunk


def split(stream: Chunks | Slow, wait_s: float) -> tuple[TerminalSize | None, list[TerminalSize]]:
    async def go() -> tuple[TerminalSize | None, list[TerminalSize]]:
        initial, later = await first_size(resize_events(stream), wait_s)
        return initial, [size async for size in later]

    return asyncio.run(go())


def test_the_first_size_is_taken_apart_from_later_ones() -> None:
    stream = Chunks(b'{"Width":80,"Height":24}', b'{"Width":90,"Height":30}')
    assert split(stream, 5.0) == (TerminalSize(80, 24), [TerminalSize(90, 30)])


def test_a_late_first_size_becomes_a_resize() -> None:
    assert split(Slow(b'{"Width":7,"Height":8}', 0.2), 0.01) == (None, [TerminalSize(7, 8)])


def test_no_size_at_all() -> None:
    assert split(Chunks(), 5.0) == (None, [])
