"""Idle sessions are closed (k8s.io/cri-streaming StreamIdleTimeout, 4 h by default)."""

from __future__ import annotations

import asyncio

import pytest

from cri.streaming.client import RemoteCommand
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import exec_request, with_server
from tests.fakes.streaming import LocalProcessRuntime

pytestmark = pytest.mark.e2e


async def wait_until_no_exec(runtime: LocalProcessRuntime) -> None:
    while runtime.running_execs:
        await asyncio.sleep(0.01)


def test_an_idle_spdy_session_is_closed_and_its_exec_cancelled() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        command = await RemoteCommand.spdy(server.get_exec_url(exec_request(["sleep", "60"])))
        assert command._session is not None
        await asyncio.wait_for(command._session.closed.wait(), 20)
        await asyncio.wait_for(wait_until_no_exec(runtime), 20)

    with_server(scenario, stream_idle_timeout_s=0.5)


def test_an_idle_websocket_session_is_closed_and_its_exec_cancelled() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        command = await RemoteCommand.websocket(server.get_exec_url(exec_request(["sleep", "60"])))
        result = await asyncio.wait_for(command.finish(), 20)
        assert result.error == b""  # closed without a status: the session was dropped
        await asyncio.wait_for(wait_until_no_exec(runtime), 20)

    with_server(scenario, stream_idle_timeout_s=0.5)


def test_traffic_keeps_a_session_alive() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        # Output every 0.25 s for 2.5 s: never idle for the 1.5 s limit, though longer.
        request = exec_request(["sh", "-c", "for i in $(seq 10); do sleep 0.25; echo $i; done"])
        result = await (await RemoteCommand.spdy(server.get_exec_url(request))).finish()
        assert result.stdout == b"".join(f"{i}\n".encode() for i in range(1, 11))
        assert result.exit_code == 0

    with_server(scenario, stream_idle_timeout_s=1.5)
