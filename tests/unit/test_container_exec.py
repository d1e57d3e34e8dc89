"""Exec through ContainerStreamingRuntime with a stand-in OCI runtime (no root): exit codes,
stdin EOF, the runtime's errors, output after exit, the process killed whenever the session
ends early or the container stops, a tty sized before the process starts.

Each scenario (tests/unit/exec_scenarios.py) runs in a subreaper process of its own, as the
daemon is one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.unit.exec_scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exec_scenario(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.exec_scenarios", name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
