"""The conmon driver's protocol side (command lines, start/sync pipes, double fork, exit
files, k8s-file logs) against a fake conmon, and the OCI runtime client against a fake
runtime; both fakes are small scripts, so no root is needed."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
import textwrap
import time

import pytest

from sandbox.monitor import proc
from sandbox.monitor.conmon import Conmon, CreateSpec, read_exit_file, read_k8s_log
from sandbox.monitor.errors import MonitorCreateError, MonitorTimeoutError
from sandbox.oci.client import RuntimeClient, is_not_found, stderr_message
from sandbox.oci.errors import OciContainerNotFoundError, OciRuntimeError

# Behaves like conmon 2.1.6 as far as crib can see: blocks on the start pipe, forks, the
# parent writes the -P pidfile and exits 0, the child reports on the sync pipe.
FAKE_CONMON = textwrap.dedent(
    """\
    import json, os, sys, time
    args = sys.argv[1:]
    opts = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
    with open(os.path.join(os.getcwd(), "argv.json"), "w") as f:
        json.dump(args, f)
    start = int(os.environ["_OCI_STARTPIPE"]); sync = int(os.environ["_OCI_SYNCPIPE"])
    assert os.read(start, 1) == b"\\0"
    child = os.fork()
    if child:
        with open(opts["-P"], "w") as f:
            f.write(str(child))
        os._exit(0)
    os.setsid()
    mode = os.environ.get("FAKE_CONMON", "ok")
    if mode == "hang":
        time.sleep(60)
    elif mode == "fail":
        message = {"pid": -1, "message": "runc: \\"oci\\" error\\n"}
        os.write(sync, json.dumps(message).encode() + b"\\n")
    elif mode == "silent":
        pass
    else:
        os.write(sync, b'{"pid": %d}\\n' % os.getpid())
    os._exit(0)
    """
)


def fake_conmon(tmp_path: pathlib.Path, mode: str = "ok") -> Conmon:
    script = tmp_path / "fake-conmon"
    script.write_text(f"#!{sys.executable}\n{FAKE_CONMON}")
    script.chmod(0o755)
    return Conmon(
        str(script), str(tmp_path / "exits"), str(tmp_path / "s"), extra_env={"FAKE_CONMON": mode}
    )


@pytest.fixture
def conmon(tmp_path: pathlib.Path) -> Conmon:
    return fake_conmon(tmp_path)


def create_spec(tmp_path: pathlib.Path, **changes: object) -> CreateSpec:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "container_id": "c1",
        "name": "k8s_POD_x",
        "bundle_dir": str(bundle),
        "persist_dir": str(tmp_path / "persist"),
        "log_path": str(tmp_path / "ctr.log"),
        "runtime_path": "/usr/sbin/runc",
        "runtime_root": "/run/crib/runtime/runc",
        **changes,
    }
    return CreateSpec(**values)  # type: ignore[arg-type]


def test_create_argv_is_crio_shaped(conmon: Conmon, tmp_path: pathlib.Path) -> None:
    spec = create_spec(tmp_path, stdin=True, log_size_max_bytes=1024)
    argv = conmon.create_argv(spec)
    pairs = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert pairs["-c"] == "c1"
    assert pairs["-u"] == "c1"
    assert pairs["-b"] == spec.bundle_dir
    assert pairs["-P"] == os.path.join(spec.bundle_dir, "conmon-pidfile")
    assert pairs["-p"] == os.path.join(spec.bundle_dir, "pidfile")
    assert pairs["--runtime-arg"] == "--root=/run/crib/runtime/runc"
    assert pairs["--exit-dir"] == conmon.exit_dir
    assert pairs["--log-size-max"] == "1024"
    assert "-i" in argv
    assert "--leave-stdin-open" in argv
    assert "-t" not in argv


def test_create_handshake_reports_pid_and_conmon_pid(
    conmon: Conmon, tmp_path: pathlib.Path
) -> None:
    spec = create_spec(tmp_path)
    created = asyncio.run(conmon.create(spec))
    # The fake's child reports its own pid, and the parent wrote the same to -P.
    assert created.container_pid == created.conmon_pid > 0
    argv = json.loads((tmp_path / "bundle" / "argv.json").read_text())
    assert argv == conmon.create_argv(spec)[1:]
    assert os.path.isdir(tmp_path / "persist")


def test_create_failure_carries_runtime_message(tmp_path: pathlib.Path) -> None:
    conmon = fake_conmon(tmp_path, "fail")
    with pytest.raises(MonitorCreateError, match='runc: "oci" error'):
        asyncio.run(conmon.create(create_spec(tmp_path)))
    conmon = fake_conmon(tmp_path, "silent")
    with pytest.raises(MonitorCreateError, match="without reporting a pid"):
        asyncio.run(conmon.create(create_spec(tmp_path)))


def test_create_timeout_kills_conmon(tmp_path: pathlib.Path) -> None:
    conmon = fake_conmon(tmp_path, "hang")
    spec = create_spec(tmp_path, timeout_s=0.5)
    with pytest.raises(MonitorTimeoutError):
        asyncio.run(conmon.create(spec))
    pid = int((tmp_path / "bundle" / "conmon-pidfile").read_text())
    # Killed (SIGKILL lands asynchronously): gone, or a zombie waiting for its reaper.
    deadline = time.monotonic() + 5
    while proc.state(pid) not in (None, "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.state(pid) in (None, "Z", "X")


def test_exit_file_and_k8s_log(tmp_path: pathlib.Path) -> None:
    exit_file = tmp_path / "c1"
    assert read_exit_file(str(exit_file)) is None
    exit_file.write_text("137")
    assert read_exit_file(str(exit_file)) == 137
    log = tmp_path / "exec.log"
    log.write_text(
        "2026-08-01T12:00:00.000000001+00:00 stdout F hello\n"
        "2026-08-01T12:00:00.000000002+00:00 stderr P par\n"
        "2026-08-01T12:00:00.000000003+00:00 stderr F tial\n"
        "2026-08-01T12:00:00.000000004+00:00 stdout F  spaced out\n"
    )
    stdout, stderr = read_k8s_log(str(log))
    assert stdout == b"hello\n spaced out\n"
    assert stderr == b"partial\n"
    assert read_k8s_log(str(log), cap_bytes=3) == (b"hel", b"par")


def test_start_time_guards_against_pid_reuse() -> None:
    me = os.getpid()
    started = proc.start_time(me)
    assert started is not None
    assert proc.is_alive(me, started)
    assert not proc.is_alive(me, started + 1)
    assert not proc.is_alive(0, 0)


FAKE_RUNTIME = textwrap.dedent(
    """\
    #!/bin/sh
    # argv: --root R COMMAND ... ID
    echo "$@" >> "$(dirname "$0")/calls"
    case "$3" in
      state)
        if [ "$4" = known ]; then
          echo '{"ociVersion":"1.0.2","id":"known","pid":42,"status":"running","bundle":"/b"}'
        else
          echo 'time="2026-01-01T00:00:00Z" level=error msg="container does not exist"' >&2
          exit 1
        fi ;;
      kill) echo 'time="x" level=error msg="container not running"' >&2; exit 1 ;;
      update) cat > "$(dirname "$0")/update-stdin" ;;
      start) echo 'cannot start: "bad" things' >&2; exit 1 ;;
    esac
    """
)


@pytest.fixture
def runtime(tmp_path: pathlib.Path) -> RuntimeClient:
    script = tmp_path / "fake-runc"
    script.write_text(FAKE_RUNTIME)
    script.chmod(0o755)
    return RuntimeClient(str(script), "/run/crib/runtime/fake", timeout_s=5)


def test_runtime_state_and_errors(runtime: RuntimeClient, tmp_path: pathlib.Path) -> None:
    state = asyncio.run(runtime.state("known"))
    assert (state.container_id, state.pid, state.status) == ("known", 42, "running")
    with pytest.raises(OciContainerNotFoundError, match="container does not exist"):
        asyncio.run(runtime.state("unknown"))
    with pytest.raises(OciContainerNotFoundError, match="not running"):
        asyncio.run(runtime.kill("known", "KILL"))
    with pytest.raises(OciRuntimeError, match='cannot start: "bad" things') as err:
        asyncio.run(runtime.start("known"))
    assert not isinstance(err.value, OciContainerNotFoundError)
    asyncio.run(runtime.update("known", {"cpu": {"shares": 512}}))
    assert json.loads((tmp_path / "update-stdin").read_text()) == {"cpu": {"shares": 512}}
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "--root /run/crib/runtime/fake state known"
    assert "update --resources - known" in calls[-1]


def test_not_found_texts_of_runc_and_crun() -> None:
    assert is_not_found("container does not exist")
    assert is_not_found("error opening file `/run/crun/x/status`: No such file or directory")
    assert not is_not_found("permission denied")
    assert stderr_message(b'time="t" level=error msg="a \\"b\\""\n') == 'a "b"'
