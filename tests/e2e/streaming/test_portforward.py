"""Port-forward through the real server to a local TCP echo server: SPDY, the SPDY tunnel
crictl uses with --transport websocket, and WebSocket channels."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct

import pytest

from cri.api import api_pb2 as pb
from cri.streaming.client import PortForwarder, WebSocketPortForward, spdy_connect
from cri.streaming.runtime import StreamClosedError
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import echo_server, round_trip, with_server
from tests.fakes.streaming import LocalProcessRuntime

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("via", ["spdy", "tunnel"])
def test_large_transfer_and_many_concurrent_connections(via: str) -> None:
    payload = os.urandom(24 * 1024 * 1024)

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo, port = await echo_server()
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forwarder = await (PortForwarder.spdy(url) if via == "spdy" else PortForwarder.tunnel(url))
        assert forwarder.protocol == "portforward.k8s.io"
        echoed = await round_trip(forwarder, port, payload)
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        small = [os.urandom(50_000 + i) for i in range(40)]
        results = await asyncio.gather(*(round_trip(forwarder, port, p) for p in small))
        assert results == small
        assert runtime.calls.count(("port_forward", "pod1", port)) == 41
        await forwarder.close()
        echo.close()

    with_server(scenario)


def test_a_refused_connection_reports_on_the_error_stream() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo, port = await echo_server()
        echo.close()
        await echo.wait_closed()  # now nothing listens there
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forwarder = await PortForwarder.spdy(url)
        connection = await forwarder.connect(port)
        message = await connection.error()
        assert message.startswith(f"error forwarding port {port} to pod pod1")
        with pytest.raises(StreamClosedError):  # both streams were reset after the message
            await connection.read()
        # The session survives: the next connection works once something listens.
        echo, port2 = await echo_server()
        assert await round_trip(forwarder, port2, b"again") == b"again"
        await forwarder.close()
        echo.close()

    with_server(scenario)


def test_streams_with_bad_headers_are_refused() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        session, _ = await spdy_connect(url, ["portforward.k8s.io"])
        for headers in (
            {"streamtype": "data", "requestid": "1"},  # no port
            {"streamtype": "data", "port": "0", "requestid": "1"},
            {"streamtype": "data", "port": "65536", "requestid": "1"},
            {"streamtype": "bogus", "port": "80", "requestid": "1"},
        ):
            with pytest.raises(StreamClosedError, match="refused"):
                await session.open_stream(headers)
        await session.close()
        assert runtime.calls == []

    with_server(scenario)


def test_an_incomplete_pair_times_out_with_a_message() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        session, _ = await spdy_connect(url, ["portforward.k8s.io"])
        error = await session.open_stream({"streamtype": "error", "port": "80", "requestid": "7"})
        await error.close()
        message = await asyncio.wait_for(error.read(), 10)
        assert b"timed out waiting for streams of request 7" in message
        await session.close()

    with_server(scenario, stream_creation_timeout_s=0.3)


def test_old_clients_without_request_id() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo, port = await echo_server()
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        session, _ = await spdy_connect(url, ["portforward.k8s.io"])
        error = await session.open_stream({"streamtype": "error", "port": str(port)})
        data = await session.open_stream({"streamtype": "data", "port": str(port)})
        await data.write(b"paired by stream id")
        await data.close()
        assert await data.read_all() == b"paired by stream id"
        await session.close()
        echo.close()
        del error

    with_server(scenario)


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_websocket_channels_one_connection_per_port(protocol: str) -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo_a, port_a = await echo_server()
        echo_b, port_b = await echo_server()
        request = pb.PortForwardRequest(pod_sandbox_id="pod1", port=[port_a, port_b])
        url = server.get_port_forward_url(request)
        forward = await WebSocketPortForward.connect(url, [port_a, port_b], protocol)
        # Each channel pair starts with its port, little-endian.
        assert await forward.port_prefix(0) == (port_a, port_a)
        assert await forward.port_prefix(1) == (port_b, port_b)
        await forward.write(0, b"to a")
        await forward.write(1, b"to b")
        assert await forward.read_channel(0) == b"to a"
        assert await forward.read_channel(2) == b"to b"
        await forward.close()
        echo_a.close()
        echo_b.close()

    with_server(scenario)


def test_websocket_ports_from_the_query_when_the_request_has_none() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo, port = await echo_server()
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="pod1"))
        forward = await WebSocketPortForward.connect(f"{url}?port={port}", [port], "")
        assert await forward.read_channel(0) == struct.pack("<H", port)
        await forward.close()
        echo.close()

    with_server(scenario)


def test_websocket_port_forward_reports_failures_on_the_error_channel() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        echo, port = await echo_server()
        echo.close()
        await echo.wait_closed()
        url = server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="p", port=[port]))
        forward = await WebSocketPortForward.connect(url, [port])
        await forward.port_prefix(0)
        message = await forward.read_channel(1)
        assert message.startswith(f"error forwarding port {port} to pod p".encode())
        assert await forward.read_channel(0) == b""  # the server closed the WebSocket
        await forward.close()

    with_server(scenario)
