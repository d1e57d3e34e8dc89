"""Port-forward into a network namespace this test creates, through the exec'd helper.

The namespace (`cstr-<random>`, loopback up) runs a TCP echo server bound to its own
127.0.0.1; the streaming server reaches it only through sandbox/netns_connect.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cri.api import api_pb2 as pb
from cri.streaming.client import PortForwarder
from cri.streaming.netns import NetnsConnectError, connect_in_netns
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import echo_server, with_server
from tests.fakes.streaming import LocalProcessRuntime

pytestmark = pytest.mark.root

# A threaded echo server: prints its port, echoes every connection, half-closes after
# the client does.
ECHO_SERVER = """
import socket, sys, threading
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(512)
print(listener.getsockname()[1], flush=True)
def echo(conn):
    with conn:
        while data := conn.recv(1 << 20):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


class Netns:
    """A named network namespace with an echo server inside."""

    def __init__(self) -> None:
        self.name = f"cstr-{secrets.token_hex(4)}"
        self.path = f"/run/netns/{self.name}"
        self.echo: subprocess.Popen[str] | None = None
        self.echo_port = 0

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.echo = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", ECHO_SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.echo.stdout is not None
        self.echo_port = int(self.echo.stdout.readline())

    def destroy(self) -> None:
        if self.echo is not None:
            self.echo.kill()
            self.echo.wait(timeout=30)
            if self.echo.stdout is not None:
                self.echo.stdout.close()
        if os.path.exists(self.path):
            subprocess.run(["ip", "netns", "del", self.name], check=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    namespace = Netns()
    try:
        namespace.create()
        yield namespace
    finally:
        namespace.destroy()
    assert not os.path.exists(namespace.path)


async def transfer(forwarder: PortForwarder, port: int, payload: bytes) -> bytes:
    connection = await forwarder.connect(port)

    async def send() -> None:
        for offset in range(0, len(payload), 1 << 20):
            await connection.write(payload[offset : offset + (1 << 20)])
        await connection.close_write()

    sender = asyncio.ensure_future(send())
    digest = hashlib.sha256()
    received = 0
    while data := await connection.read(1 << 20):
        digest.update(data)
        received += len(data)
    await sender
    assert await connection.error() == ""
    connection.reset()
    assert received == len(payload)
    return digest.digest()


def test_a_100_mib_transfer_with_checksum(netns: Netns) -> None:
    payload = os.urandom(100 * 1024 * 1024)

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        runtime.netns_paths["pod1"] = netns.path
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forwarder = await PortForwarder.spdy(url)
        assert await transfer(forwarder, netns.echo_port, payload) == (
            hashlib.sha256(payload).digest()
        )
        await forwarder.close()

    with_server(scenario)


@pytest.mark.parametrize("via", ["spdy", "tunnel"])
def test_many_concurrent_connections(netns: Netns, via: str) -> None:
    payloads = [os.urandom(200_000 + i) for i in range(60)]

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        runtime.netns_paths["pod1"] = netns.path
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forwarder = await (PortForwarder.spdy(url) if via == "spdy" else PortForwarder.tunnel(url))
        digests = await asyncio.gather(*(transfer(forwarder, netns.echo_port, p) for p in payloads))
        assert digests == [hashlib.sha256(p).digest() for p in payloads]
        await forwarder.close()

    with_server(scenario)


def test_only_the_namespace_is_reached(netns: Netns) -> None:
    # An echo server on the host's loopback must NOT be what a pod port-forward reaches.
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        host_echo, host_port = await echo_server()
        runtime.netns_paths["pod1"] = netns.path
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forwarder = await PortForwarder.spdy(url)
        connection = await forwarder.connect(host_port)
        message = await connection.error()
        assert f"failed to connect to localhost:{host_port} inside namespace" in message
        assert "Connection refused" in message
        await forwarder.close()
        host_echo.close()

    with_server(scenario)


def test_connect_in_netns_directly(netns: Netns) -> None:
    async def scenario() -> bytes:
        sock = await connect_in_netns(netns.path, netns.echo_port)
        with sock:
            reader, writer = await asyncio.open_connection(sock=sock.dup())
            writer.write(b"direct")
            writer.write_eof()
            data = await reader.read()
            writer.close()
            return data

    assert asyncio.run(scenario()) == b"direct"


def test_a_path_that_is_no_network_namespace() -> None:
    with pytest.raises(NetnsConnectError, match="/dev/null"):
        asyncio.run(connect_in_netns("/dev/null", 80))
