"""Attach against a stand-in for conmon's attach socket and ctl fifo (no root): stream
bytes demultiplexed, stdin packets sized for conmon, the stdin_once rules, resizes."""

from __future__ import annotations

import asyncio
import os
import socket
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cri.containers.manager import MonitorPaths
from cri.containers.records import ContainerState
from cri.containers.streaming import ATTACH_WRITE_BYTES, ContainerStreamingRuntime
from cri.streaming.runtime import StdioStreams, TerminalSize
from tests.fakes.stdio import Input, Output


class FakeContainers:
    """The two lookups attach makes, for one running container."""

    def __init__(self, bundle_dir: str, paths: MonitorPaths) -> None:
        self.bundle_dir = bundle_dir
        self.paths = paths
        self.listeners: list[Any] = []

    def require(self, container_id: str) -> Any:
        return types.SimpleNamespace(
            record_id=container_id,
            status=types.SimpleNamespace(state=ContainerState.RUNNING),
            metadata=types.SimpleNamespace(bundle_dir=self.bundle_dir),
        )

    def monitor_paths(self, container_id: str) -> MonitorPaths:
        return self.paths


class FakeConmon:
    """Accepts one attach client; sends `packets`, records what the client sends."""

    def __init__(self, path: str, packets: list[bytes], close_after_eof: bool) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.packets = packets
        self.close_after_eof = close_after_eof
        self.received: list[bytes] = []
        self.saw_eof = asyncio.Event()
        self.release = asyncio.Event()  # closes the connection (the container exited)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self.listener)
        with conn:
            for packet in self.packets:
                await loop.sock_sendall(conn, packet)
            while data := await loop.sock_recv(conn, 1 << 20):
                self.received.append(data)
            self.saw_eof.set()
            if not self.close_after_eof:
                await self.release.wait()
        self.listener.close()


def runtime_for(tmp_path: Any, **flags: bool) -> tuple[ContainerStreamingRuntime, str]:
    bundle = str(tmp_path)
    paths = MonitorPaths(
        attach_socket=os.path.join(bundle, "attach"),
        ctl_fifo=os.path.join(bundle, "ctl"),
        tty=flags.get("tty", False),
        stdin=flags.get("stdin", True),
        stdin_once=flags.get("stdin_once", True),
    )
    runtime = ContainerStreamingRuntime(
        FakeContainers(bundle, paths),  # type: ignore[arg-type]
        sandbox_of=lambda _: None,  # type: ignore[arg-type,return-value]
        runtime_client=lambda _: None,  # type: ignore[arg-type,return-value]
        console_dir=os.path.join(bundle, "console"),
    )
    return runtime, paths.attach_socket


def test_output_is_demultiplexed_and_stdin_sent_in_conmon_sized_packets(tmp_path: Any) -> None:
    runtime, path = runtime_for(tmp_path, stdin_once=True)
    big = b"z" * (ATTACH_WRITE_BYTES * 2 + 10)

    async def scenario() -> tuple[Output, Output, FakeConmon]:
        conmon = FakeConmon(path, [b"\x02out", b"\x03err", b"\x01ignored", b"\x02more"], True)
        server = asyncio.ensure_future(conmon.serve())
        stdout, stderr = Output(), Output()
        streams = StdioStreams(False, Input([b"hello", big]), stdout, stderr, None)
        await runtime.attach("c1", streams)
        await server
        return stdout, stderr, conmon

    stdout, stderr, conmon = asyncio.run(scenario())
    assert (stdout.data, stderr.data) == (b"outmore", b"err")
    assert conmon.received[0] == b"hello"
    assert all(len(p) <= ATTACH_WRITE_BYTES for p in conmon.received)
    assert b"".join(conmon.received[1:]) == big
    assert conmon.saw_eof.is_set()  # shutdown(SHUT_WR): conmon closes the container's stdin


def test_stdin_once_waits_for_the_container_after_stdin_ends(tmp_path: Any) -> None:
    runtime, path = runtime_for(tmp_path, stdin_once=True)

    async def scenario() -> None:
        conmon = FakeConmon(path, [], close_after_eof=False)
        server = asyncio.ensure_future(conmon.serve())
        attach = asyncio.ensure_future(
            runtime.attach("c1", StdioStreams(False, Input([b"x"]), Output(), None, None))
        )
        await conmon.saw_eof.wait()
        await asyncio.sleep(0.2)
        assert not attach.done()  # the container still runs: the session goes on
        conmon.release.set()
        await asyncio.wait_for(attach, 5)
        await server

    asyncio.run(scenario())


def test_a_container_that_keeps_stdin_open_detaches_at_stdin_end(tmp_path: Any) -> None:
    runtime, path = runtime_for(tmp_path, stdin_once=False)

    async def scenario() -> None:
        conmon = FakeConmon(path, [], close_after_eof=False)
        server = asyncio.ensure_future(conmon.serve())
        streams = StdioStreams(False, Input([b"x"]), Output(), None, None)
        await asyncio.wait_for(runtime.attach("c1", streams), 5)  # CRI-O returns here too
        await conmon.saw_eof.wait()
        conmon.release.set()
        await server

    asyncio.run(scenario())


def test_tty_sizes_go_to_the_ctl_fifo(tmp_path: Any) -> None:
    runtime, path = runtime_for(tmp_path, tty=True)
    fifo = os.path.join(str(tmp_path), "ctl")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # conmon keeps one open

    async def sizes() -> AsyncIterator[TerminalSize]:
        yield TerminalSize(width=100, height=30)
        yield TerminalSize(width=101, height=31)

    async def scenario() -> None:
        conmon = FakeConmon(path, [b"\x02prompt"], close_after_eof=False)
        server = asyncio.ensure_future(conmon.serve())
        streams = StdioStreams(
            True, None, Output(), None, sizes(), initial_size=TerminalSize(width=80, height=24)
        )
        attach = asyncio.ensure_future(runtime.attach("c1", streams))
        await asyncio.sleep(0.3)
        server.cancel()  # conmon closes the connection: the container exited
        await asyncio.wait_for(attach, 5)
        conmon.listener.close()

    asyncio.run(scenario())
    try:
        assert os.read(reader, 1000) == b"1 24 80\n1 30 100\n1 31 101\n"
    finally:
        os.close(reader)


def test_an_absent_attach_socket_is_an_error_naming_it(tmp_path: Any) -> None:
    runtime, path = runtime_for(tmp_path)
    streams = StdioStreams(False, None, Output(), None, None)
    with pytest.raises(Exception, match="attach") as caught:
        asyncio.run(runtime.attach("c1", streams))
    assert path in str(caught.value)
