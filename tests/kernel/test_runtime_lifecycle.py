"""crib-runtime's command semantics (runc's): state transitions, kill/delete rules, exec,
update, ps, features, failed creates that leave nothing behind, and host restrictions
(oom_score_adj, hard rlimits) handled instead of failing."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tests.kernel.leaks import cgroup_leftovers, mounts_under
from tests.rootfs import base_spec

if TYPE_CHECKING:
    from tests.kernel.runtime_harness import Runner

pytestmark = pytest.mark.root
pytest_plugins = ("tests.kernel.runtime_harness",)

CREATE = ["create", "--bundle", "{bundle}", "--pid-file", "{pid_file}", "{id}"]
SLEEPER = ["/bin/probe", "sleep:60"]


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def status_of(step: dict[str, Any]) -> str:
    assert step["rc"] == 0, step
    return str(json.loads(step["stdout"])["status"])


def test_status_transitions_and_state_json(crib: Runner) -> None:
    container_id, bundle, steps = crib.script(
        base_spec(SLEEPER),
        [
            CREATE,
            ["state", "{id}"],
            ["start", "{id}"],
            ["state", "{id}"],
            ["kill", "{id}", "KILL"],
            ["wait"],
            ["state", "{id}"],
            ["delete", "{id}"],
            ["state", "{id}"],
        ],
    )
    assert steps[0]["rc"] == 0, steps[0]
    created = json.loads(steps[1]["stdout"])
    assert created["status"] == "created"
    assert created["id"] == container_id
    assert created["bundle"] == str(bundle)
    assert created["pid"] > 0
    assert status_of(steps[3]) == "running"
    assert steps[5]["exit_code"] == -9
    stopped = json.loads(steps[6]["stdout"])
    assert stopped["status"] == "stopped"
    assert stopped["pid"] == 0
    assert steps[7]["rc"] == 0
    assert steps[8]["rc"] == 1
    assert "does not exist" in one_line(steps[8]["stderr"])


def test_delete_running_needs_force(crib: Runner, runc: Runner) -> None:
    for runner in (crib, runc):
        _, _, steps = runner.script(
            base_spec(SLEEPER),
            [
                CREATE,
                ["start", "{id}"],
                ["delete", "{id}"],
                ["state", "{id}"],
                ["delete", "--force", "{id}"],
                ["state", "{id}"],
            ],
        )
        assert steps[2]["rc"] == 1, runner.runtime
        assert "not stopped" in steps[2]["stderr"]
        assert status_of(steps[3]) == "running"
        assert steps[4]["rc"] == 0
        assert steps[5]["rc"] == 1


def test_delete_created_container_without_force(crib: Runner) -> None:
    _, _, steps = crib.script(base_spec(SLEEPER), [CREATE, ["delete", "{id}"], ["state", "{id}"]])
    assert steps[1]["rc"] == 0, steps[1]
    assert steps[2]["rc"] == 1


def test_kill_stopped_container(crib: Runner, runc: Runner) -> None:
    for runner in (crib, runc):
        _, _, steps = runner.script(
            base_spec(["/bin/probe", "exit:0"]),
            [
                CREATE,
                ["start", "{id}"],
                ["wait"],
                ["kill", "{id}", "TERM"],
                ["kill", "--all", "{id}", "KILL"],
            ],
        )
        assert steps[3]["rc"] == 1, runner.runtime
        assert "container not running" in steps[3]["stderr"]
        assert steps[4]["rc"] == 0, (runner.runtime, steps[4])


# KILL: the probe is pid 1 of its namespace and has no handlers, so the kernel drops
# signals whose default action would apply (pid_namespaces(7)); SIGKILL always lands.
@pytest.mark.parametrize("signal_text", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_signal_spellings(crib: Runner, signal_text: str) -> None:
    _, _, steps = crib.script(
        base_spec(SLEEPER), [CREATE, ["start", "{id}"], ["kill", "{id}", signal_text], ["wait"]]
    )
    assert steps[2]["rc"] == 0, steps[2]
    assert steps[3]["exit_code"] == -9


def test_kill_bad_signal(crib: Runner) -> None:
    _, _, steps = crib.script(base_spec(SLEEPER), [CREATE, ["kill", "{id}", "SIGNOPE"]])
    assert steps[1]["rc"] == 1
    assert "invalid signal" in one_line(steps[1]["stderr"])


def test_start_twice_and_create_twice(crib: Runner) -> None:
    _, _, steps = crib.script(
        base_spec(SLEEPER), [CREATE, ["start", "{id}"], ["start", "{id}"], CREATE]
    )
    assert steps[2]["rc"] == 1
    assert steps[3]["rc"] == 1
    assert "already exists" in one_line(steps[3]["stderr"])


def test_exec_detach_with_pid_file_and_shorthand_flags(crib: Runner) -> None:
    _, bundle, steps = crib.script(
        base_spec(SLEEPER),
        [
            CREATE,
            ["start", "{id}"],
            [
                "exec",
                "--cwd",
                "/tmp",
                "--env",
                "CRT_X=1",
                "--user",
                "1000:1000",
                "{id}",
                "/bin/probe",
                "ids",
                "cwd",
                "env",
            ],
            [
                "exec",
                "--detach",
                "--pid-file",
                "{bundle}/exec.pid",
                "{id}",
                "/bin/probe",
                "sleep:30",
            ],
            ["ps", "--format", "json", "{id}"],
            ["exec", "{id}", "/bin/probe", "exit:7"],
            ["exec", "{id}", "/bin/crt-missing"],
        ],
    )
    out = json.loads(steps[2]["stdout"])
    assert out["ids"]["uid"] == 1000
    assert out["cwd"] == "/tmp"
    assert "CRT_X=1" in out["env"]
    assert steps[3]["rc"] == 0, steps[3]
    exec_pid = int((bundle / "exec.pid").read_text())
    assert exec_pid in json.loads(steps[4]["stdout"])
    assert steps[5]["rc"] == 7
    assert steps[6]["rc"] == 1
    line = one_line(steps[6]["stderr"])
    assert "executable file not found" in line or "no such file" in line.lower()


def test_exec_into_stopped_container_fails(crib: Runner) -> None:
    _, _, steps = crib.script(
        base_spec(["/bin/probe", "exit:0"]),
        [CREATE, ["start", "{id}"], ["wait"], ["exec", "{id}", "/bin/probe"]],
    )
    assert steps[3]["rc"] == 1
    assert "stopped" in one_line(steps[3]["stderr"])


def test_update_resources_from_stdin(crib: Runner) -> None:
    resources = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 42}}
    _, _, steps = crib.script(
        base_spec(SLEEPER),
        [
            CREATE,
            ["update", "--resources", "-", "{id}"],
            [
                "exec",
                "{id}",
                "/bin/probe",
                "file:/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "file:/sys/fs/cgroup/pids/pids.max",
            ],
        ],
        stdin=json.dumps(resources),
    )
    assert steps[1]["rc"] == 0, steps[1]
    out = json.loads(steps[2]["stdout"])
    assert out["file:/sys/fs/cgroup/memory/memory.limit_in_bytes"] == str(64 * 1024 * 1024)
    assert out["file:/sys/fs/cgroup/pids/pids.max"] == "42"


def test_update_rejects_bad_json(crib: Runner) -> None:
    _, _, steps = crib.script(
        base_spec(SLEEPER),
        [CREATE, ["update", "--resources", "-", "{id}"]],
        stdin='{"memory": {"limit": "lots"}}',
    )
    assert steps[1]["rc"] == 1
    assert "memory.limit" in one_line(steps[1]["stderr"])


def test_systemd_cgroup_is_a_clear_error(crib: Runner) -> None:
    proc = subprocess.run(
        [crib.runtime, "--root", str(crib.root), "--systemd-cgroup", "state", "crt-x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "systemd cgroup driver is not supported" in one_line(proc.stderr)


def test_features(crib: Runner) -> None:
    proc = subprocess.run([crib.runtime, "features"], capture_output=True, text=True, check=True)
    features = json.loads(proc.stdout)
    assert "rro" in features["mountOptions"]
    assert "user" in features["linux"]["namespaces"]
    assert features["linux"]["mountExtensions"]["idmap"]["enabled"] is False
    assert features["linux"]["cgroup"] == {
        "v1": True,
        "v2": True,
        "systemd": False,
        "systemdUser": False,
    }


def test_negative_oom_score_adj_is_restricted_not_fatal(crib: Runner) -> None:
    spec = base_spec(["/bin/probe", "oom"])
    spec["process"]["oomScoreAdj"] = -999
    _, _, steps = crib.script(spec, [CREATE, ["start", "{id}"], ["wait"]])
    assert steps[0]["rc"] == 0, steps[0]


def test_hard_rlimit_raise_is_clamped_not_fatal(crib: Runner) -> None:
    spec = base_spec(SLEEPER)
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 2**40, "soft": 2**40}]
    _, _, steps = crib.script(spec, [CREATE, ["exec", "{id}", "/bin/probe", "rlimits"]])
    assert steps[0]["rc"] == 0, steps[0]
    nofile = json.loads(steps[1]["stdout"])["rlimits"]["nofile"]
    assert nofile[0] <= nofile[1]


def test_time_namespace_offsets(crib: Runner) -> None:
    spec = base_spec(["/bin/probe", "file:/proc/self/timens_offsets"])
    spec["linux"]["namespaces"].append({"type": "time"})
    spec["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0}}
    out = crib.run(spec)["output"]
    assert (
        "monotonic      86400" in " ".join(out["file:/proc/self/timens_offsets"].split("\n"))
        or "86400" in out["file:/proc/self/timens_offsets"]
    )


def test_no_pivot(crib: Runner) -> None:
    _, _, steps = crib.script(
        base_spec(["/bin/probe", "ls:/"]),
        [
            ["create", "--no-pivot", "--bundle", "{bundle}", "--pid-file", "{pid_file}", "{id}"],
            ["start", "{id}"],
            ["wait"],
        ],
    )
    assert steps[0]["rc"] == 0, steps[0]
    assert steps[2]["exit_code"] == 0


def test_json_log_records_the_error(crib: Runner, crt_tmp: pathlib.Path) -> None:
    log = crt_tmp / "runtime.log"
    proc = subprocess.run(
        [
            crib.runtime,
            "--root",
            str(crib.root),
            "--log",
            str(log),
            "--log-format",
            "json",
            "kill",
            "crt-missing",
            "KILL",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["level"] == "error"
    assert "does not exist" in record["msg"]


def processes_rooted_in(rootfs: pathlib.Path) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/root") == str(rootfs):
                    found.append(int(name))
            except OSError:
                continue
    return found


def bad_bundle_cases() -> dict[str, Any]:
    unknown_ns = base_spec(SLEEPER)
    unknown_ns["linux"]["namespaces"].append({"type": "crt-bogus"})
    missing_rootfs = base_spec(SLEEPER)
    missing_rootfs["root"]["path"] = "/crt-no-such-rootfs"
    missing_args = base_spec(["/bin/crt-not-there"])
    bad_mount = base_spec(SLEEPER)
    bad_mount["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/crt-no-such-dir", "options": ["rbind"]}
    )
    hooked = base_spec(SLEEPER)
    hooked["hooks"] = {"prestart": [{"path": "/bin/true"}], "poststop": []}
    return {
        "no config.json": (None, "config.json not found"),
        "hooks": (hooked, "hooks: prestart: OCI hooks are not supported"),
        "bad json": ("{not json", "invalid JSON"),
        "unknown namespace": (unknown_ns, 'unknown namespace type "crt-bogus"'),
        "missing rootfs": (missing_rootfs, "does not exist"),
        "args not found": (missing_args, 'exec: "/bin/crt-not-there": no such file'),
        "bind source missing": (bad_mount, "mount /mnt: stat: "),
    }


@pytest.mark.parametrize("case", list(bad_bundle_cases()))
def test_bad_bundle_fails_with_one_line_and_leaves_nothing(
    crib: Runner, runtime_rootfs: pathlib.Path, case: str
) -> None:
    spec, expected = bad_bundle_cases()[case]
    container_id = f"crt-{secrets.token_hex(4)}"
    bundle = crib.work / container_id
    bundle.mkdir(parents=True)
    if isinstance(spec, str):
        (bundle / "config.json").write_text(spec)
    elif spec is not None:
        spec["linux"]["cgroupsPath"] = f"/{container_id}"
        if not spec["root"]["path"].startswith("/crt-"):
            spec["root"]["path"] = str(runtime_rootfs)
        (bundle / "config.json").write_text(json.dumps(spec))
    args = [crib.runtime, "--root", str(crib.root)]
    try:
        proc = subprocess.run(
            [
                *args,
                "create",
                "--bundle",
                str(bundle),
                "--pid-file",
                str(bundle / "pid"),
                container_id,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert expected in line, line
        assert line.startswith(f"crib-runtime: create {container_id}: ")
        assert not (crib.root / container_id).exists()
        assert cgroup_leftovers(container_id) == []
        assert mounts_under(str(runtime_rootfs)) == []
        assert processes_rooted_in(runtime_rootfs) == []
        assert not (bundle / "pid").exists()
    finally:
        subprocess.run([*args, "delete", "--force", container_id], capture_output=True, check=False)


def test_setup_error_names_step_errno_and_path(crib: Runner, runtime_rootfs: pathlib.Path) -> None:
    spec = base_spec(SLEEPER)
    spec["mounts"].append(
        {"destination": "/crt-mnt", "type": "crt-no-such-fs", "source": "none", "options": []}
    )
    _, _, steps = crib.script(spec, [CREATE])
    line = one_line(steps[0]["stderr"])
    assert "mount /crt-mnt: " in line
    assert "errno 19" in line  # ENODEV: unknown filesystem type
    assert f"path {runtime_rootfs}/crt-mnt" in line


def test_exec_tty_without_console_socket_relays_the_pty(crib: Runner) -> None:
    _, _, steps = crib.script(
        base_spec(SLEEPER),
        [CREATE, ["start", "{id}"], ["exec", "-t", "{id}", "/bin/probe", "tty", "exit:5"]],
    )
    assert steps[2]["rc"] == 5, steps[2]
    out = json.loads(steps[2]["stdout"].replace("\r\n", "\n").strip().splitlines()[-1])
    assert out["tty"]["stdin"] == 1
    assert out["tty"]["name"].startswith("/dev/pts/")
