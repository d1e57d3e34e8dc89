"""Exec scenarios for ContainerStreamingRuntime with the stand-in runtime (tests/fakes/oci_exec.py).

Run as `python -m tests.unit.exec_scenarios NAME` by test_container_exec.py: each scenario
runs in a process of its own that is PR_SET_CHILD_SUBREAPER, as the daemon is, so the
exec'd processes are re-parented to it and their exit status is its to collect. A scenario
raises (exit status 1) when something is wrong.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import types
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cri.containers.records import ContainerState
from cri.containers.streaming import ContainerExecError, ContainerStreamingRuntime
from cri.streaming.runtime import StdioStreams, TerminalSize
from sandbox.monitor import proc
from sandbox.oci.client import RuntimeClient
from tests.fakes.stdio import Input, Output

FAKE_RUNTIME = os.path.join(os.path.dirname(__file__), "..", "fakes", "oci_exec.py")


class FakeContainers:
    """One running container whose exec'd processes are local processes."""

    def __init__(self, bundle_dir: str) -> None:
        self.bundle_dir = bundle_dir
        self.listeners: list[Any] = []

    def require(self, container_id: str) -> Any:
        return types.SimpleNamespace(
            record_id=container_id,
            status=types.SimpleNamespace(state=ContainerState.RUNNING),
            metadata=types.SimpleNamespace(bundle_dir=self.bundle_dir, runtime_handler="fake"),
        )

    def exec_process_spec(self, container_id: str, cmd: list[str], tty: bool) -> dict[str, Any]:
        return {
            "args": cmd,
            "env": ["PATH=/usr/bin:/bin"],
            "user": {"uid": os.getuid(), "gid": os.getgid()},
            "terminal": tty,
        }


def make_runtime(base: str) -> tuple[ContainerStreamingRuntime, FakeContainers]:
    wrapper = os.path.join(base, "fake-runtime")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(FAKE_RUNTIME)}" "$@"\n')
    os.chmod(wrapper, 0o755)
    containers = FakeContainers(os.path.join(base, "bundle"))
    runtime = ContainerStreamingRuntime(
        containers,  # type: ignore[arg-type]
        sandbox_of=lambda _: None,  # type: ignore[arg-type,return-value]
        runtime_client=lambda _: RuntimeClient(wrapper, os.path.join(base, "root")),
        console_dir=os.path.join(base, "console"),
        drain_idle_s=0.5,
    )
    return runtime, containers


def pipes(stdin: list[bytes] | None = None) -> tuple[StdioStreams, Output, Output]:
    stdout, stderr = Output(), Output()
    source = Input(stdin) if stdin is not None else None
    return StdioStreams(False, source, stdout, stderr, None), stdout, stderr


async def wait_for_file(path: str, timeout_s: float = 10.0) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                with open(path) as f:
                    text = f.read().strip()
                if text:
                    return text
            except FileNotFoundError:
                pass
            await asyncio.sleep(0.02)


def gone(pid: int) -> bool:
    """Dead and reaped (a zombie still counts as present)."""
    return proc.state(pid) is None


async def exit_codes(base: str) -> None:
    runtime, _ = make_runtime(base)
    streams, stdout, stderr = pipes()
    code = await runtime.exec("c1", ["sh", "-c", "echo out; echo err >&2; exit 3"], streams)
    assert (code, stdout.data, stderr.data) == (3, b"out\n", b"err\n"), (code, stdout, stderr)
    streams, _, _ = pipes()
    assert await runtime.exec("c1", ["sh", "-c", "kill -9 $$"], streams) == 137


async def stdin_eof(base: str) -> None:
    runtime, _ = make_runtime(base)
    payload = [os.urandom(50_000) for _ in range(10)]
    streams, stdout, _ = pipes(payload)
    assert await runtime.exec("c1", ["cat"], streams) == 0
    assert stdout.data == b"".join(payload)


async def runtime_failure(base: str) -> None:
    runtime, _ = make_runtime(base)
    streams, _, stderr = pipes()
    with pytest.raises(ContainerExecError, match=r'fake-runtime exec: exec: "no-such-binary"'):
        await runtime.exec("c1", ["no-such-binary"], streams)
    assert stderr.data == b""  # the runtime's message is the error, not output
    assert os.listdir(os.path.join(base, "bundle", "exec")) == []  # process file removed


async def background_child_does_not_hold_the_session(base: str) -> None:
    runtime, _ = make_runtime(base)
    streams, stdout, _ = pipes()
    marker = os.path.join(base, "child")
    cmd = ["sh", "-c", f"sleep 1000 & echo $! > {marker}; echo started"]
    assert await asyncio.wait_for(runtime.exec("c1", cmd, streams), 10) == 0
    assert stdout.data == b"started\n"
    os.kill(int(await wait_for_file(marker)), 9)


async def cancelled_while_the_runtime_runs(base: str) -> None:
    """The client leaves after the process exists but before the runtime wrote its pid file."""
    os.environ["FAKE_RUNTIME_DELAY_S"] = "1.0"
    runtime, _ = make_runtime(base)
    marker = os.path.join(base, "pid")
    streams, _, _ = pipes()
    session = asyncio.ensure_future(
        runtime.exec("c1", ["sh", "-c", f"echo $$ > {marker}; exec sleep 1000"], streams)
    )
    pid = int(await wait_for_file(marker))
    session.cancel()
    await asyncio.gather(session, return_exceptions=True)
    assert gone(pid), f"exec process {pid} outlived its cancelled session"


async def cancelled_while_running(base: str) -> None:
    runtime, _ = make_runtime(base)
    marker = os.path.join(base, "pid")
    streams, _, _ = pipes()
    session = asyncio.ensure_future(
        runtime.exec("c1", ["sh", "-c", f"echo $$ > {marker}; exec sleep 1000"], streams)
    )
    pid = int(await wait_for_file(marker))
    await asyncio.sleep(0.2)
    session.cancel()
    await asyncio.gather(session, return_exceptions=True)
    assert gone(pid), f"exec process {pid} outlived its cancelled session"


async def killed_when_the_container_stops(base: str) -> None:
    runtime, containers = make_runtime(base)
    marker = os.path.join(base, "pid")
    streams, _, _ = pipes()
    session = asyncio.ensure_future(
        runtime.exec("c1", ["sh", "-c", f"echo $$ > {marker}; exec sleep 1000"], streams)
    )
    await wait_for_file(marker)
    await asyncio.sleep(0.2)
    for listener in containers.listeners:
        listener("c2", "stopped")  # another container: nothing happens
    await asyncio.sleep(0.2)
    assert not session.done()
    for listener in containers.listeners:
        listener("c1", "stopped")
    assert await asyncio.wait_for(session, 10) == 137


async def tty_sized_before_start(base: str) -> None:
    runtime, _ = make_runtime(base)
    stdout = Output()
    streams = StdioStreams(
        True, None, stdout, None, None, initial_size=TerminalSize(width=100, height=30)
    )
    code = await runtime.exec("c1", ["sh", "-c", "stty size; echo TERM=$TERM"], streams)
    assert code == 0
    assert stdout.data.replace(b"\r", b"") == b"30 100\nTERM=xterm\n", stdout.data
    # stdin EOF on a tty is VEOF: `cat` ends.
    stdout = Output()
    streams = StdioStreams(True, Input([b"typed\n"]), stdout, None, None)
    assert await asyncio.wait_for(runtime.exec("c1", ["cat"], streams), 10) == 0
    assert b"typed" in stdout.data


SCENARIOS: dict[str, Callable[[str], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        exit_codes,
        stdin_eof,
        runtime_failure,
        background_child_does_not_hold_the_session,
        cancelled_while_the_runtime_runs,
        cancelled_while_running,
        killed_when_the_container_stops,
        tty_sized_before_start,
    )
}


def main(name: str) -> int:
    proc.set_child_subreaper()
    with tempfile.TemporaryDirectory(prefix="cstm-exec-") as base:
        asyncio.run(asyncio.wait_for(SCENARIOS[name](base), 60))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
