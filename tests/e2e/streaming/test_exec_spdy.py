"""Exec and attach over SPDY/3.1 through the real server, with real local processes."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from cri.api import api_pb2 as pb
from cri.streaming import spdy
from cri.streaming.client import RemoteCommand, spdy_connect, spdy_upgrade
from cri.streaming.runtime import TerminalSize
from cri.streaming.server import StreamingServer
from tests.e2e.streaming.helpers import exec_request, with_server
from tests.fakes.streaming import FakeContainer, LocalProcessRuntime

pytestmark = pytest.mark.e2e


def test_exec_output_streams_and_success() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "echo out; echo err >&2"]))
        command = await RemoteCommand.spdy(url)
        assert command.protocol == "v4.channel.k8s.io"  # client-go offers v5 first
        result = await command.finish()
        assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
        assert result.status == {"status": "Success"}
        assert result.exit_code == 0
        assert runtime.calls == [("exec", "c1", ["sh", "-c", "echo out; echo err >&2"])]

    with_server(scenario)


def test_non_zero_exit_code_reaches_the_client() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "exit 42"]))
        result = await (await RemoteCommand.spdy(url)).finish()
        assert result.exit_code == 42
        assert result.status is not None
        assert result.status["reason"] == "NonZeroExitCode"

    with_server(scenario)


def test_stdin_half_close_reaches_the_process_at_once() -> None:
    # user-asks #7: `kubectl exec -i ... cat` must end when the client's stdin ends.
    payload = os.urandom(3 * 1024 * 1024)

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "cat; echo eof >&2"], stdin=True))
        command = await RemoteCommand.spdy(url, stdin=True)

        async def feed() -> None:
            for offset in range(0, len(payload), 100_000):
                await command.write_stdin(payload[offset : offset + 100_000])
            await command.close_stdin()

        feeder = asyncio.ensure_future(feed())
        result = await command.finish()
        await feeder
        assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(payload).digest()
        assert result.stderr == b"eof\n"
        assert result.exit_code == 0

    with_server(scenario)


@pytest.mark.parametrize(
    ("protocol", "json_status"),
    [
        ("v4.channel.k8s.io", True),
        ("v3.channel.k8s.io", False),
        ("v2.channel.k8s.io", False),
    ],
)
def test_older_protocol_versions(protocol: str, json_status: bool) -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "echo hi; exit 3"]))
        command = await RemoteCommand.spdy(url, protocols=[protocol])
        assert command.protocol == protocol
        result = await command.finish()
        assert result.stdout == b"hi\n"
        if json_status:
            assert result.exit_code == 3
        else:
            # v2/v3 carry the failure as text (client-go: "error executing remote command").
            assert result.error.startswith(b"command terminated with non-zero exit code")

    with_server(scenario)


def test_v1_resets_the_error_stream_and_half_closes_stdin() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        request = exec_request(["sh", "-c", "echo v1; exit 1"], stdin=True)
        command = await RemoteCommand.spdy(
            server.get_exec_url(request), stdin=True, protocols=["channel.k8s.io"]
        )
        assert command.protocol == "channel.k8s.io"
        # The server half-closes stdin right after setup: we read its end at once.
        assert await command._streams["stdin"].read() == b""
        result = await command.finish()
        assert result.stdout == b"v1\n"
        assert result.error == b""  # the error stream was reset: no status for v1

    with_server(scenario)


def test_runtime_errors_are_internal_errors() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"], container_id="missing"))
        result = await (await RemoteCommand.spdy(url)).finish()
        assert result.status is not None
        assert result.status["reason"] == "InternalError"
        assert result.status["code"] == 500
        assert "container missing not found" in str(result.status["message"])
        assert result.exit_code is None

    with_server(scenario)


def test_tty_sized_before_start_then_resized_with_echo() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(
            exec_request(["sh", "-c", "stty size; exec sh"], stdin=True, tty=True)
        )
        command = await RemoteCommand.spdy(url, stdin=True, tty=True)
        assert "resize" in command._streams
        assert "stderr" not in command._streams
        # client-go sends the initial size right after creating its streams: the process
        # must see it from its first instruction.
        await command.resize(132, 43)
        output = b""
        while b"43 132" not in output:
            output += await command.read()
        await command.resize(100, 20)
        await command.write_stdin(b"stty size; tty; exit 7\n")
        result = await command.finish()
        output = (output + result.stdout).replace(b"\r\n", b"\n")
        assert output.startswith(b"43 132\n")  # the very first output: sized before start
        assert b"20 100\n" in output  # resized while running
        assert b"/dev/pts/" in output  # stdout is a terminal
        assert b"stty size; tty; exit 7" in output  # the terminal echoed our input
        assert result.exit_code == 7
        assert runtime.initial_sizes == [TerminalSize(width=132, height=43)]
        assert runtime.resizes == [TerminalSize(width=100, height=20)]

    with_server(scenario)


def test_tty_without_a_size_starts_after_a_short_wait() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "exit 5"], stdin=True, tty=True))
        command = await RemoteCommand.spdy(url, stdin=True, tty=True)
        result = await command.finish()
        assert result.exit_code == 5
        assert runtime.initial_sizes == []

    with_server(scenario)


def test_twenty_concurrent_exec_sessions() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        async def one(index: int) -> None:
            url = server.get_exec_url(exec_request(["sh", "-c", "read x; echo $x"], stdin=True))
            command = await RemoteCommand.spdy(url, stdin=True)
            await started.wait()
            await command.write_stdin(f"session-{index}\n".encode())
            await command.close_stdin()
            result = await command.finish()
            assert (result.stdout, result.exit_code) == (f"session-{index}\n".encode(), 0)

        started = asyncio.Event()
        sessions = asyncio.gather(*(one(i) for i in range(20)))
        # Every process is running before any gets its input: 20 sessions at once.
        while runtime.running_execs < 20:
            await asyncio.sleep(0.01)
        started.set()
        await sessions
        assert runtime.max_running_execs == 20

    with_server(scenario)


def test_a_client_that_goes_away_cancels_the_exec() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sleep", "60"]))
        command = await RemoteCommand.spdy(url)
        while runtime.running_execs == 0:
            await asyncio.sleep(0.01)
        assert command._session is not None
        command._session.abort("test hangs up")
        while runtime.running_execs:
            await asyncio.sleep(0.01)

    with_server(scenario)


def test_client_pings_are_answered() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["sh", "-c", "read x"], stdin=True))
        command = await RemoteCommand.spdy(url, stdin=True)
        assert command._session is not None
        await command._session.ping(timeout_s=5)
        await command.close_stdin()
        await command.finish()

    with_server(scenario)


def test_streams_not_created_in_time_end_the_session() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["true"], stdin=True))
        session, _ = await spdy_connect(url)
        await session.open_stream({"streamtype": "error"})  # and never the others
        await asyncio.wait_for(session.closed.wait(), 10)
        assert runtime.calls == []

    with_server(scenario, stream_creation_timeout_s=0.3)


def test_a_client_that_never_sends_window_update_is_not_stalled() -> None:
    # moby/spdystream never grants credit; 2 MiB of stdout must still arrive in full.
    size = 2 * 1024 * 1024

    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        url = server.get_exec_url(exec_request(["head", "-c", str(size), "/dev/zero"]))
        reader, writer, _, _ = await spdy_upgrade(url)
        connection = spdy.SpdyConnection(spdy.Role.CLIENT)
        for kind in ("error", "stdout", "stderr"):
            connection.open_stream({"streamtype": kind})
        writer.write(connection.data_to_send())
        received = 0
        ended = set()
        while len(ended) < 3:
            data = await reader.read(1 << 16)
            assert data, "server closed before finishing"
            for event in connection.receive_data(data):
                if isinstance(event, spdy.DataReceived) and event.stream_id == 3:
                    received += len(event.data)
                elif isinstance(event, spdy.StreamEnded):
                    ended.add(event.stream_id)
            # Pings and resets only; never a WINDOW_UPDATE.
            writer.write(connection.data_to_send())
        assert received == size
        writer.close()

    with_server(scenario)


def test_attach_to_a_running_container() -> None:
    async def scenario(server: StreamingServer, runtime: LocalProcessRuntime) -> None:
        container = FakeContainer(["sh", "-c", "while read l; do echo got:$l; done; echo bye >&2"])
        await container.start()
        runtime.containers["c9"] = container
        request = pb.AttachRequest(container_id="c9", stdin=True, stdout=True, stderr=True)
        command = await RemoteCommand.spdy(server.get_attach_url(request), stdin=True)
        await command.write_stdin(b"one\n")
        assert await command.read("stdout") == b"got:one\n"
        await command.close_stdin()  # the container's read loop sees EOF and exits
        result = await command.finish()
        assert result.stderr == b"bye\n"
        assert result.status == {"status": "Success"}
        assert runtime.calls == [("attach", "c9", False)]

    with_server(scenario)
