"""The real streaming server on 127.0.0.1:0 with the local-process fake runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cri.api import api_pb2 as pb
from cri.streaming.client import PortForwarder
from cri.streaming.server import StreamingServer
from tests.fakes.streaming import LocalProcessRuntime

T = TypeVar("T")
SCENARIO_TIMEOUT_S = 120.0


def with_server(
    scenario: Callable[[StreamingServer, LocalProcessRuntime], Awaitable[T]], **options: Any
) -> T:
    """Run `scenario` against a fresh server; the server is stopped afterwards, always."""

    async def main() -> T:
        runtime = LocalProcessRuntime()
        server = StreamingServer(runtime, "127.0.0.1", 0, **options)
        await server.start()
        try:
            return await asyncio.wait_for(scenario(server, runtime), SCENARIO_TIMEOUT_S)
        finally:
            await server.stop()
            for container in runtime.containers.values():
                await container.stop()

    return asyncio.run(main())


def exec_request(
    cmd: list[str],
    *,
    stdin: bool = False,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    container_id: str = "c1",
) -> pb.ExecRequest:
    """A CRI ExecRequest as kubelet or crictl sends it."""
    return pb.ExecRequest(
        container_id=container_id,
        cmd=cmd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr and not tty,
        tty=tty,
    )


async def echo_server() -> tuple[asyncio.Server, int]:
    """A TCP echo server on 127.0.0.1 that half-closes after the client does."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 18):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def round_trip(forwarder: PortForwarder, port: int, payload: bytes) -> bytes:
    """Send `payload`, half-close, read the echo to its end."""
    connection = await forwarder.connect(port)

    async def send() -> None:
        for offset in range(0, len(payload), 1 << 18):
            await connection.write(payload[offset : offset + (1 << 18)])
        await connection.close_write()

    sender = asyncio.ensure_future(send())
    parts = []
    while data := await connection.read():
        parts.append(data)
    await sender
    assert await connection.error() == ""
    connection.reset()
    return b"".join(parts)
