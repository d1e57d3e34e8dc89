"""conmon as the containers code will use it, on a pause crib started: ExecSync output,
exit code and timeout through `conmon -e --sync`, and the exit file conmon writes when the
monitored process dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from sandbox.monitor.conmon import Conmon
from tests.e2e.pods import PodCrib, pod_crib
from tests.handlers import HANDLERS, runtime_binary
from tests.leakcheck import no_leaks  # noqa: F401 - module-wide leak check

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_leaks")]


@pytest.fixture(scope="module", params=HANDLERS)
def crib(request: pytest.FixtureRequest) -> Iterator[PodCrib]:
    with pod_crib(request.param) as crib:
        yield crib


def conmon_of(crib: PodCrib) -> Conmon:
    state = crib.daemon.state
    return Conmon("conmon", os.path.join(state, "exits"), os.path.join(state, "s"))


def runtime_path(handler: str) -> str:
    return runtime_binary(handler)


def process(*args: str) -> dict[str, object]:
    return {
        "args": list(args),
        "cwd": "/",
        "env": ["PATH=/usr/bin"],
        "user": {"uid": 0, "gid": 0},
        "terminal": False,
        "noNewPrivileges": True,
    }


def test_exec_sync_in_the_pause(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    work_dir = os.path.join(crib.base_dir, "exec")
    conmon = conmon_of(crib)
    root = os.path.join(crib.daemon.state, "runtime", crib.handler)
    try:
        result = asyncio.run(
            conmon.exec_sync(
                sandbox_id,
                runtime_path(crib.handler),
                root,
                process("/usr/bin/catatonit", "--version"),
                work_dir,
                timeout_s=10,
            )
        )
        assert result.exit_code == 0
        assert result.stdout.startswith(b"tini version")
        assert not result.timed_out
        result = asyncio.run(
            conmon.exec_sync(
                sandbox_id,
                runtime_path(crib.handler),
                root,
                process("/usr/bin/catatonit", "--no-such-flag"),
                work_dir,
                timeout_s=10,
            )
        )
        assert result.exit_code == 1
        assert b"usage: catatonit" in result.stderr  # stderr kept apart from stdout
        assert result.stdout == b""
        started = time.monotonic()
        result = asyncio.run(
            conmon.exec_sync(
                sandbox_id,
                runtime_path(crib.handler),
                root,
                process("/usr/bin/catatonit", "-P"),  # pauses for ever
                work_dir,
                timeout_s=1,
            )
        )
        assert result.timed_out
        assert result.exit_code == -1
        assert result.stderr.endswith(b"command timed out")
        assert time.monotonic() - started < 15
    finally:
        crib.remove_pod(sandbox_id)


def test_exit_file_of_a_killed_pause(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    try:
        pid = crib.info(sandbox_id)["pid"]
        os.kill(pid, signal.SIGKILL)
        conmon = conmon_of(crib)
        deadline = time.monotonic() + 10
        while conmon.read_exit_code(sandbox_id) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conmon.read_exit_code(sandbox_id) == 137  # 128 + SIGKILL
    finally:
        crib.remove_pod(sandbox_id)
