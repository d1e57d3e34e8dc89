"""Exec over WebSocket: v5 with its CLOSE signal, v4, base64, unnamed, and the SPDY tunnel."""

from __future__ import annotations

import asyncio

import pytest

from cri.streaming.client import RemoteCommand
from cri.streaming.runtime import TerminalSize
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import exec_request, with_server
from tests.fakes.streaming import LocalProcessRuntime

pytestmark = pytest.mark.e2e


def test_v5_half_closes_stdin_with_the_close_signal() -> None:
    # What `crictl exec -i --transport websocket` does: v5 only, GET.
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = exec_request(["sh", "-c", "cat; echo err >&2; exit 4"], stdin=True)
        command = await RemoteCommand.websocket(server.get_exec_url(request))
        assert command.protocol == "v5.channel.k8s.io"
        await command.write_stdin(b"through v5\n")
        await command.close_stdin()
        result = await command.finish()
        assert (result.stdout, result.stderr) == (b"through v5\n", b"err\n")
        assert result.exit_code == 4

    with_server(scenario)


@pytest.mark.parametrize(
    ("protocol", "json_status"),
    [
        ("v4.channel.k8s.io", True),
        ("v4.base64.channel.k8s.io", True),
        ("channel.k8s.io", False),
        ("base64.channel.k8s.io", False),
    ],
)
def test_older_websocket_protocols(protocol: str, json_status: bool) -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "printf 'a\\001\\377b'; exit 2"]))
        command = await RemoteCommand.websocket(url, protocols=[protocol])
        assert command.protocol == protocol
        result = await command.finish()
        assert result.stdout == b"a\x01\xffb"  # binary-safe, base64 or not
        if json_status:
            assert result.exit_code == 2
        else:
            assert result.error.startswith(b"command terminated with non-zero exit code")

    with_server(scenario)


def test_unnamed_protocol_when_the_client_names_none() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["echo", "plain"]))
        command = await RemoteCommand.websocket(url, protocols=[])
        assert command.protocol == ""
        result = await command.finish()
        assert result.stdout == b"plain\n"
        assert result.error == b""  # pre-v4: nothing on success

    with_server(scenario)


def test_tty_over_websocket_with_resize() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh"], stdin=True, tty=True))
        command = await RemoteCommand.websocket(url)
        await command.resize(90, 30)
        await command.write_stdin(b"stty size; exit 0\n")
        result = await command.finish()
        assert b"30 90" in result.stdout
        assert result.exit_code == 0
        assert runtime.initial_sizes == [TerminalSize(90, 30)]

    with_server(scenario)


def test_exec_through_the_spdy_tunnel() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = exec_request(["sh", "-c", "cat; exit 9"], stdin=True)
        command = await RemoteCommand.spdy(server.get_exec_url(request), stdin=True, tunnel=True)
        assert command.protocol == "v4.channel.k8s.io"
        await command.write_stdin(b"tunnelled\n")
        await command.close_stdin()
        result = await command.finish()
        assert result.stdout == b"tunnelled\n"
        assert result.exit_code == 9

    with_server(scenario)


def test_stdin_over_v4_ends_with_the_connection() -> None:
    # v4 has no half-close: stdin data flows, the process decides when to stop.
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = exec_request(["sh", "-c", "read line; echo got:$line"], stdin=True)
        command = await RemoteCommand.websocket(
            server.get_exec_url(request), protocols=["v4.channel.k8s.io"]
        )
        await command.write_stdin(b"abc\n")
        result = await command.finish()
        assert result.stdout == b"got:abc\n"
        with pytest.raises(ValueError, match="cannot half-close"):
            await command.close_stdin()

    with_server(scenario)


def test_pings_are_answered() -> None:
    # client-go pings every 5 s and gives up after 61 s without a pong.
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = exec_request(["sh", "-c", "read x; echo $x"], stdin=True)
        command = await RemoteCommand.websocket(server.get_exec_url(request))
        assert command._socket is not None
        command._socket.send_ping(b"keepalive")
        await asyncio.wait_for(command._socket.pong.wait(), 10)
        await command.write_stdin(b"still here\n")
        result = await command.finish()
        assert result.stdout == b"still here\n"

    with_server(scenario)
