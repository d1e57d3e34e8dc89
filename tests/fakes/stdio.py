"""In-memory streams for runtime tests: what the streaming server hands a StreamingRuntime."""

from __future__ import annotations

import asyncio

from cri.streaming.runtime import StreamClosedError


class Input:
    """An InputStream fed from a list; b"" (end) after the last chunk, or a reset."""

    def __init__(self, chunks: list[bytes], reset: bool = False) -> None:
        self.chunks = list(chunks)
        self.reset = reset

    async def read(self, max_bytes: int = 65536) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.reset:
            raise StreamClosedError("reset")
        return b""


class Output:
    """An OutputStream that records, optionally never completing a write."""

    def __init__(self, stuck: bool = False) -> None:
        self.data = b""
        self.stuck = stuck

    async def write(self, data: bytes) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.data += data

    async def close(self) -> None:
        pass
