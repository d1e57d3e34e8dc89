"""Copying between streaming clients and a process's pipes or pty (cri/containers/stdio.py),
with real pipes and ptys and in-memory streams (no root)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import termios

import pytest

from cri.containers.stdio import (
    OutputCopy,
    OwnedFd,
    copy_stdin,
    eof_character,
    finish_output,
    pty_eof,
    read_fd,
    set_window_size,
    write_fd,
)
from cri.streaming.runtime import StreamClosedError, TerminalSize
from tests.fakes.stdio import Input, Output


def pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    return read_end, write_end


@pytest.mark.parametrize("reset", [False, True])
def test_stdin_is_copied_then_the_pipe_closed(reset: bool) -> None:
    read_end, write_end = pipe()
    owned = OwnedFd(write_end)

    async def scenario() -> bytes:
        payload = [b"a" * 100_000, b"b" * 100_000]  # more than a pipe holds
        copier = asyncio.ensure_future(copy_stdin(Input(payload, reset), write_end, owned.close))
        received = b""
        while data := await read_fd(read_end):
            received += data
        await copier
        return received

    assert asyncio.run(scenario()) == b"a" * 100_000 + b"b" * 100_000
    assert owned.closed
    os.close(read_end)


def test_stdin_keeps_draining_the_client_when_the_process_closed_its_stdin() -> None:
    read_end, write_end = pipe()
    os.close(read_end)  # the process is gone: EPIPE
    source = Input([b"x"] * 50)
    ended = []
    asyncio.run(copy_stdin(source, write_end, lambda: ended.append(True)))
    assert source.chunks == []
    assert ended == [True]
    os.close(write_end)


def test_owned_fd_closes_once() -> None:
    read_end, write_end = os.pipe()
    owned = OwnedFd(write_end)
    owned.close()
    reused = os.dup(read_end)  # may get the number write_end had
    owned.close()  # must not close `reused`
    os.fstat(reused)
    os.close(reused)
    os.close(read_end)


def test_pty_eof_ends_a_canonical_read_and_window_size_is_set() -> None:
    master, slave = pty.openpty()
    try:
        assert eof_character(master) == b"\x04"
        set_window_size(master, TerminalSize(width=132, height=43))
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (43, 132)
        os.write(master, b"partial")
        pty_eof(master)  # VEOF: the pending line is delivered without a newline
        assert os.read(slave, 100) == b"partial"
        pty_eof(master)  # on an empty line: a zero-length read, the process's EOF
        assert os.read(slave, 100) == b""
    finally:
        os.close(master)
        os.close(slave)


def test_a_pty_master_reads_eof_once_the_slave_is_closed() -> None:
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    os.write(slave, b"bye")
    os.close(slave)

    async def drain() -> bytes:
        received = b""
        while data := await read_fd(master):
            received += data
        return received

    assert asyncio.run(drain()).replace(b"\r", b"") == b"bye"
    os.close(master)


def test_output_is_drained_after_exit_until_silent() -> None:
    """A child holding the pipe open after the process exited: what it wrote arrives, then
    the copy is abandoned after the idle time instead of waiting for ever."""
    read_end, write_end = pipe()
    sink = Output()

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        copy = OutputCopy(read_end, sink)
        task = asyncio.ensure_future(copy.run())
        os.write(write_end, b"before exit\n")
        started = loop.time()
        await finish_output([(copy, task)], drain_idle_s=0.2, stall_s=5.0)
        return loop.time() - started

    elapsed_s = asyncio.run(scenario())
    assert sink.data == b"before exit\n"
    assert elapsed_s < 2.0
    os.close(read_end)
    os.close(write_end)


def test_output_to_a_client_that_stopped_reading_is_given_up_after_the_stall_time() -> None:
    read_end, write_end = pipe()
    os.write(write_end, b"x" * 1000)
    os.close(write_end)

    async def scenario() -> None:
        copy = OutputCopy(read_end, Output(stuck=True))
        task = asyncio.ensure_future(copy.run())
        await asyncio.sleep(0.05)
        assert copy.writing
        # Not given up at the idle time (the client may be slow), but at the stall time.
        await finish_output([(copy, task)], drain_idle_s=0.05, stall_s=0.5)
        assert task.cancelled()

    asyncio.run(scenario())
    os.close(read_end)


def test_output_for_a_gone_client_is_still_drained() -> None:
    read_end, write_end = pipe()

    class Gone(Output):
        async def write(self, data: bytes) -> None:
            raise StreamClosedError("client left")

    async def scenario() -> None:
        copy = OutputCopy(read_end, Gone())
        task = asyncio.ensure_future(copy.run())
        # More than a pipe holds: this only finishes if the copy keeps reading.
        await asyncio.wait_for(write_fd(write_end, b"y" * 1_000_000), 10)
        os.close(write_end)
        await finish_output([(copy, task)], drain_idle_s=1.0)

    asyncio.run(scenario())
    os.close(read_end)
