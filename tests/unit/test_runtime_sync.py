"""crib-runtime create's parent <-> child protocol never hangs: whichever child fails or
dies at whichever step, and whatever fails on the parent's side, `create` ends with one
line naming the cause and leaves no child behind (tests/unit/sync_scenarios.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from sandbox.runtime import sync

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Each scenario takes milliseconds; a hung one is what is being tested for.
DEADLINE_S = 20


def scenario(name: str) -> dict[str, object]:
    """Run one scenario in its own session; fail (not hang) when it passes the deadline."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.sync_scenarios", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the scenario and its stand-in children
        proc.communicate()
        pytest.fail(f"scenario {name}: create's handshake hung for {DEADLINE_S} s")
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    assert result["left"] == [], f"scenario {name} left children behind"
    return result


def test_ready() -> None:
    assert scenario("ready")["outcome"] == "ready"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("intermediate-exits", "intermediate: exited with status 3 before the container was ready"),
        ("intermediate-error", "setns: invalid argument (errno 22, path /proc/1/ns/x)"),
        (
            "intermediate-killed-after-fork",
            "intermediate: killed by signal 9 before the container was ready",
        ),
        ("init-dies-before-join", "join cgroup: [Errno 3] No such process"),
        ("init-error-after-join", "mount /proc: operation not permitted (errno 1)"),
        ("init-dies-after-join", "init: exited with status 5 before the container was ready"),
    ],
)
def test_a_child_that_fails_or_dies_ends_create(name: str, message: str) -> None:
    result = scenario(name)
    assert result["outcome"] == "error"
    assert result["message"] == message


def test_a_cgroup_refusing_the_init_ends_create() -> None:
    # The production hang: the init waits for "cgroup-joined", the parent's cgroup.procs
    # write fails (an empty v1 cpuset: ENOSPC), and the parent must not wait for the init.
    result = scenario("join-fails")
    assert result["outcome"] == "error"
    assert "No space left on device" in str(result["message"])


def test_queued_error_never_waits() -> None:
    parent, child = sync.pair()
    try:
        assert sync.queued_error(parent) is None  # nothing sent: no wait
        sync.send(child, {"type": "pid", "pid": 7})
        assert sync.queued_error(parent) is None  # not an error: not one
        sync.send_error(child, "mount", OSError(2, "No such file or directory", "/x"))
        queued = sync.queued_error(parent)
        assert queued is not None
        assert queued.line() == "mount: no such file or directory (errno 2, path /x)"
        child.close()
        assert sync.queued_error(parent) is None  # EOF
    finally:
        parent.close()
        child.close()
