"""crib-runtime's command line without root: errors, state records, signal names, and
what keeps start-up cheap (the modules it may load); the
`python -X importtime` budget of 60 ms is measured by bench/runtime.py, not here: timings do
not belong in pass/fail tests."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from common.binaries import resolve
from sandbox.runtime import commands, container, errors

REPO = pathlib.Path(__file__).resolve().parents[2]
RUNTIME_MODULES = (
    "sandbox.runtime.cli",
    "sandbox.runtime.create",
    "sandbox.runtime.commands",
    "sandbox.runtime.exec",
)


def crib_runtime(*args: str, root: pathlib.Path) -> subprocess.CompletedProcess[str]:
    path = resolve("crib-runtime")
    assert path
    return subprocess.run(
        [path, "--root", str(root), *args], capture_output=True, text=True, check=False
    )


def test_state_of_a_missing_container(tmp_path: pathlib.Path) -> None:
    proc = crib_runtime("state", "crt-nope", root=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == 'crib-runtime: state crt-nope: container "crt-nope" does not exist\n'


def test_delete_force_of_a_missing_container_succeeds(tmp_path: pathlib.Path) -> None:
    (tmp_path / "crt-half").mkdir()  # an aborted create: directory without state.json
    assert crib_runtime("delete", "--force", "crt-half", root=tmp_path).returncode == 0
    assert not (tmp_path / "crt-half").exists()
    assert crib_runtime("delete", "crt-half", root=tmp_path).returncode == 1


def test_invalid_container_id(tmp_path: pathlib.Path) -> None:
    proc = crib_runtime("state", "../etc", root=tmp_path)
    assert proc.returncode == 1
    assert 'invalid container id "../etc"' in proc.stderr


def test_create_without_bundle_is_one_line(tmp_path: pathlib.Path) -> None:
    proc = crib_runtime(
        "create", "--bundle", str(tmp_path / "missing"), "crt-1", root=tmp_path / "state"
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "does not exist" in proc.stderr


def test_features_is_json(tmp_path: pathlib.Path) -> None:
    proc = crib_runtime("features", root=tmp_path)
    features = json.loads(proc.stdout)
    assert features["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_CMP_MASKED_EQ" in features["linux"]["seccomp"]["operators"]


def test_state_is_derived_from_the_kernel(tmp_path: pathlib.Path) -> None:
    os.makedirs(tmp_path / "crt-me")
    start_time = container.process_start_time(os.getpid())
    assert start_time is not None
    record: container.Record = {
        "id": "crt-me",
        "init_pid": os.getpid(),
        "init_start_time": start_time,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2026-01-01T00:00:00.000000000Z",
        "annotations": {"a": "b"},
        "cgroups_path": "/crt-me",
        "cgroup_dirs": {},
        "cgroup_unified": False,
        "no_pivot": False,
        "config": {},
    }
    container.save(str(tmp_path), record)
    assert container.status(str(tmp_path), record) == "running"
    (tmp_path / "crt-me" / container.EXEC_FIFO).write_text("")
    assert commands.state(str(tmp_path), "crt-me")["status"] == "created"
    record["init_start_time"] += 1  # a reused pid: not our init
    container.save(str(tmp_path), record)
    state = commands.state(str(tmp_path), "crt-me")
    assert state["status"] == "stopped"
    assert state["pid"] == 0
    assert state["annotations"] == {"a": "b"}


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        ("start", "running", "cannot start an already running container"),
        ("start", "stopped", "cannot start a container that has stopped"),
        ("kill", "stopped", "container not running"),
        ("exec", "stopped", "container not running"),
        ("delete", "running", "cannot delete container c1 that is not stopped: running"),
    ],
)
def test_lifecycle_table(command: str, status: str, message: str) -> None:
    with pytest.raises(container.ContainerStateError, match=message):
        container.require(command, "c1", status)


def test_allowed_transitions() -> None:
    container.require("delete --force", "c1", "running")
    container.require("delete", "c1", "created")
    container.require("kill", "c1", "created")


@pytest.mark.parametrize(("text", "number"), [("KILL", 9), ("SIGTERM", 15), ("hup", 1), ("10", 10)])
def test_signal_names(text: str, number: int) -> None:
    assert commands.parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGBOGUS", "0", "999", ""])
def test_bad_signals(text: str) -> None:
    with pytest.raises(errors.SignalError):
        commands.parse_signal(text)


def test_runtime_imports_no_heavy_modules() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, " + ", ".join(RUNTIME_MODULES) + "; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    loaded = set(proc.stdout.split())
    for heavy in ("subprocess", "dataclasses", "socket", "asyncio", "inspect", "grpc", "yaml"):
        assert heavy not in loaded, f"crib-runtime imports {heavy}"


def test_parse_signal_knows_every_name_signal_knows() -> None:
    # parse_signal reads _signal to avoid the enum; it must agree with signal.Signals.
    for name, member in signal.Signals.__members__.items():
        assert commands.parse_signal(name) == int(member)
        assert commands.parse_signal(name.removeprefix("SIG").lower()) == int(member)


@pytest.mark.parametrize("text", ["SIG_DFL", "SIG_IGN", "_DFL", "SIG_BLOCK", "NSIG", "SIGNOPE"])
def test_parse_signal_refuses_what_is_not_a_signal(text: str) -> None:
    with pytest.raises(errors.SignalError, match=f"invalid signal: {text}"):
        commands.parse_signal(text)


def test_hot_commands_import_nothing_slow() -> None:
    # create, start, state, kill, delete and exec run for every container and every ExecSync
    # probe: typing, json, re, enum and signal (its enums) would cost ~25 ms each time.
    hot = [
        f"sandbox.runtime.{name}"
        for name in ("cli", "commands", "create", "exec", "container", "start")
    ]
    # delete and update open the container's cgroup manager.
    hot += ["sandbox.linux.cgroups.manager", "sandbox.linux.cgroups.v1", "sandbox.linux.cgroups.v2"]
    script = (
        f"import sys\nfor name in {hot!r}: __import__(name)\nprint(' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = set(proc.stdout.split())
    slow = {"typing", "json", "re", "enum", "signal", "common.errors"} & loaded
    assert not slow, f"the hot crib-runtime commands import {sorted(slow)}"
