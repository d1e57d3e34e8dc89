"""conmon (Debian 2.1.6) drives crib-runtime exactly as CRI-O drives it, and runc too."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.kernel.leaks import cgroup_leftovers
from tests.rootfs import base_spec, make_bundle

if TYPE_CHECKING:
    from tests.kernel.runtime_harness import Runner

pytestmark = pytest.mark.root
pytest_plugins = ("tests.kernel.runtime_harness",)

SCENARIO = pathlib.Path(__file__).parent / "conmon_scenario.py"


@pytest.mark.parametrize("runner_name", ["crib", "runc"])
def test_conmon_create_start_exec_kill_delete(
    request: pytest.FixtureRequest, runner_name: str, crt_tmp: pathlib.Path
) -> None:
    if shutil.which("conmon") is None:
        pytest.skip("conmon is not installed")
    runner: Runner = request.getfixturevalue(runner_name)
    container_id = f"crt-{crt_tmp.name[-8:].replace('_', 'x').lower()}"
    spec = base_spec(["/bin/sh", "-c", "echo crt-hello-from-init; exec /bin/probe sleep:60"])
    spec["linux"]["cgroupsPath"] = f"/{container_id}"
    bundle = make_bundle(crt_tmp / "bundle", runner.rootfs, spec)
    exec_spec = crt_tmp / "exec.json"
    process = dict(spec["process"], args=["/bin/sh", "-c", "echo crt-exec-out; exit 3"])
    exec_spec.write_text(json.dumps(process))
    job = {
        "runtime": runner.runtime,
        "root": str(runner.root),
        "bundle": str(bundle),
        "id": container_id,
        "work": str(crt_tmp / "work"),
        "exec_spec": str(exec_spec),
    }
    proc = subprocess.run(
        [sys.executable, str(SCENARIO), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["create"]["pid"] > 0, result
    assert result["start_rc"] == 0
    assert result["state"] == "running"
    assert result["exec"]["exit_code"] == 3, result
    assert "crt-exec-out" in result["exec_log"]
    assert result["kill_rc"] == 0
    assert result["exit_file"] == "137"
    assert result["persist_exit"] == "137"
    assert " stdout F crt-hello-from-init" in result["ctr_log"]
    assert result["state_after"] == "stopped"
    assert result["delete_rc"] == 0, result["delete_stderr"]
    assert cgroup_leftovers(container_id) == []
