"""Byte transports the SPDY session runs over: a TCP connection, or a WebSocket tunnel.

A transport is an ordered, reliable byte pipe with half-close. `write` only queues (it
never blocks, so frames leave in the order the sans-I/O core produced them); `drain`
waits while the peer is slow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import Protocol

READ_BYTES = 256 * 1024


def take_chunk(chunks: collections.deque[bytes], max_bytes: int) -> bytes:
    """The first queued chunk, at most `max_bytes` of it (the rest stays queued first).

    What a SPDY stream's and a WebSocket channel's `read` hand out from what arrived.
    """
    chunk = chunks[0]
    if len(chunk) <= max_bytes:
        chunks.popleft()
        return chunk
    chunks[0] = chunk[max_bytes:]
    return chunk[:max_bytes]


class ByteTransport(Protocol):
    """What `SpdySession` needs from the connection under it."""

    async def read(self) -> bytes:
        """The next bytes from the peer; b"" at end of stream. May raise `ConnectionError`."""
        ...

    def write(self, data: bytes) -> None:
        """Queue `data` for the peer (never blocks)."""
        ...

    async def drain(self) -> None:
        """Wait until queued bytes are below the high-water mark. May raise `ConnectionError`."""
        ...

    def write_eof(self) -> None:
        """Half-close: we send nothing more (best effort)."""
        ...

    def close(self) -> None:
        """Close both directions now."""
        ...


class TcpTransport:
    """An asyncio stream pair, plus bytes the HTTP parser had read past the handshake."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes = b""
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._initial = initial

    async def read(self) -> bytes:
        """The bytes buffered by the HTTP parser first, then the socket's."""
        if self._initial:
            data, self._initial = self._initial, b""
            return data
        return await self._reader.read(READ_BYTES)

    def write(self, data: bytes) -> None:
        """Queue `data` (ignored once the connection is closing)."""
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        """Wait for the socket buffer to drain."""
        if self._writer.is_closing():
            raise ConnectionResetError("connection closed")
        await self._writer.drain()

    def write_eof(self) -> None:
        """shutdown(SHUT_WR): the peer reads EOF after our last frame."""
        if not self._writer.is_closing() and self._writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write_eof()

    def close(self) -> None:
        """Close the socket."""
        self._writer.close()
