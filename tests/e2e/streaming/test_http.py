"""The HTTP side: routes, tokens (reuse, expiry, kind), and upgrade refusals."""

from __future__ import annotations

import asyncio

import pytest

from cri.api import api_pb2 as pb
from cri.streaming.client import (
    RemoteCommand,
    UpgradeFailedError,
    spdy_connect,
    websocket_connect,
)
from cri.streaming.errors import TooManyStreamingRequestsError
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import exec_request, with_server
from tests.fakes.streaming import LocalProcessRuntime

pytestmark = pytest.mark.e2e


async def raw_request(server: StreamingServer, request: bytes) -> bytes:
    """Send raw HTTP and return everything the server answers before closing."""
    host, port = server.base_url.removeprefix("http://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    response = await reader.read()
    writer.close()
    return response


def test_a_reused_token_is_refused() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"]))
        await (await RemoteCommand.spdy(url)).finish()
        with pytest.raises(UpgradeFailedError) as caught:
            await RemoteCommand.spdy(url)
        assert caught.value.status == 404
        assert runtime.calls == [("exec", "c1", ["true"])]

    with_server(scenario)


def test_a_token_is_used_up_even_by_a_failed_upgrade() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"]))
        with pytest.raises(UpgradeFailedError) as caught:
            await spdy_connect(url, ["v9.channel.k8s.io"])
        assert caught.value.status == 403
        with pytest.raises(UpgradeFailedError) as caught:
            await spdy_connect(url)
        assert caught.value.status == 404

    with_server(scenario)


def test_expired_and_unknown_tokens_are_404() -> None:
    now = [0.0]

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"]))
        now[0] += 61
        with pytest.raises(UpgradeFailedError) as caught:
            await RemoteCommand.spdy(url)
        assert caught.value.status == 404
        with pytest.raises(UpgradeFailedError) as caught:
            await RemoteCommand.spdy(server.base_url + "exec/AAAAAAAA")
        assert caught.value.status == 404
        assert "404 page not found" in caught.value.body

    with_server(scenario, clock=lambda: now[0])


def test_a_token_only_serves_its_own_kind() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        exec_url = server.get_exec_url(exec_request(["true"]))
        attach_url = exec_url.replace("/exec/", "/attach/")
        with pytest.raises(UpgradeFailedError) as caught:
            await RemoteCommand.spdy(attach_url)
        assert caught.value.status == 404
        with pytest.raises(UpgradeFailedError):
            await RemoteCommand.spdy(exec_url)  # used up by the wrong-kind attempt

    with_server(scenario)


def test_missing_protocol_header_and_missing_upgrade_are_400() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        token = server.get_exec_url(exec_request(["true"])).rsplit("/", 1)[1]
        response = await raw_request(
            server,
            f"POST /exec/{token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            "Upgrade: SPDY/3.1\r\nContent-Length: 0\r\n\r\n".encode(),
        )
        assert response.startswith(b"HTTP/1.1 400 ")
        assert b"X-Stream-Protocol-Version does not exist" in response
        token = server.get_exec_url(exec_request(["true"])).rsplit("/", 1)[1]
        response = await raw_request(
            server,
            f"GET /exec/{token} HTTP/1.1\r\nHost: x\r\n"
            "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n".encode(),
        )
        assert response.startswith(b"HTTP/1.1 400 ")
        assert b"missing upgrade headers" in response

    with_server(scenario)


def test_unsupported_protocols_are_403_with_the_accepted_list() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        token = server.get_exec_url(exec_request(["true"])).rsplit("/", 1)[1]
        response = await raw_request(
            server,
            f"POST /exec/{token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
            "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n\r\n".encode(),
        )
        assert response.startswith(b"HTTP/1.1 403 ")
        accepted = [
            line.split(b": ", 1)[1]
            for line in response.split(b"\r\n")
            if line.lower().startswith(b"x-accepted-stream-protocol-versions")
        ]
        assert accepted == [
            b"v4.channel.k8s.io",
            b"v3.channel.k8s.io",
            b"v2.channel.k8s.io",
            b"channel.k8s.io",
        ]

    with_server(scenario)


def test_websocket_with_no_common_subprotocol_is_403() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"]))
        with pytest.raises(UpgradeFailedError) as caught:
            await websocket_connect(url, ["v9.channel.k8s.io"])
        assert caught.value.status == 403

    with_server(scenario)


def test_unknown_paths_and_methods() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        response = await raw_request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 404 ")
        token = server.get_exec_url(exec_request(["true"])).rsplit("/", 1)[1]
        response = await raw_request(
            server, f"PUT /exec/{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert response.startswith(b"HTTP/1.1 405 ")
        response = await raw_request(server, b"garbage\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 400 ")

    with_server(scenario)


def test_both_get_and_post_upgrade() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        for method in ("GET", "POST"):
            url = server.get_exec_url(exec_request(["echo", method]))
            session, protocol = await spdy_connect(url, method=method)
            assert protocol == "v4.channel.k8s.io"
            await session.close()

    with_server(scenario)


def test_too_many_outstanding_urls() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = pb.PortForwardRequest(pod_sandbox_id="p1")
        for _ in range(1000):
            server.get_port_forward_url(request)
        with pytest.raises(TooManyStreamingRequestsError):
            server.get_port_forward_url(request)

    with_server(scenario)


def test_stop_ends_running_sessions() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        command = await RemoteCommand.spdy(server.get_exec_url(exec_request(["sleep", "60"])))
        while runtime.running_execs == 0:
            await asyncio.sleep(0.01)
        await server.stop()
        assert runtime.running_execs == 0  # the exec was cancelled (its process killed)
        result = await command.finish()
        assert result.error == b""

    with_server(scenario)
