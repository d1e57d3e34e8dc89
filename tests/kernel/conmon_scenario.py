"""conmon drives a runtime the way CRI-O does (see /work/shared/docs/conmon.md), in one
subreaper process so every conmon and container process is reaped here.

    python tests/kernel/conmon_scenario.py '{"runtime": PATH, "root": R, "bundle": B,
                                             "id": ID, "work": DIR, "exec_spec": FILE}'

Steps: conmon create (start pipe byte, {"pid": N} on the sync pipe), `runtime start`,
ExecSync through `conmon --exec-process-spec --sync` ({"exit_code": N}), `runtime kill`,
the exit file written by conmon, `runtime delete`. Prints one JSON object of observations.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def conmon_run(args: list[str], env_extra: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Start conmon with the start and sync pipes on fds 3 and 4 (CRI-O's ExtraFiles)."""
    sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    start_parent, start_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # CRI-O passes them as fds 3 and 4; conmon takes the numbers from the environment.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "_OCI_SYNCPIPE": str(sync_child.fileno()),
        "_OCI_STARTPIPE": str(start_child.fileno()),
        **env_extra,
    }
    proc = subprocess.Popen(
        ["conmon", *args],
        env=env,
        pass_fds=(sync_child.fileno(), start_child.fileno()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sync_child.close()
    start_child.close()
    start_parent.sendall(b"\0")
    sync_parent.settimeout(30)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sync_parent.recv(4096)
        if not chunk:
            break
        data += chunk
    rc = proc.wait(timeout=30)
    message = json.loads(data.splitlines()[0]) if data.strip() else {}
    return message, rc


def reap(deadline: float, until_gone: list[int] | None = None) -> dict[int, int]:
    statuses = {}
    while time.monotonic() < deadline:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            statuses[pid] = os.waitstatus_to_exitcode(status)
            continue
        if not until_gone or all(p in statuses for p in until_gone):
            break
        time.sleep(0.01)
    return statuses


def main() -> int:
    job = json.loads(sys.argv[1])
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work, bundle, container_id = job["work"], job["bundle"], job["id"]
    runtime = [job["runtime"], "--root", job["root"]]
    exits = os.path.join(work, "exits")
    persist = os.path.join(work, "persist")
    sockets = os.path.join(work, "sockets")
    for directory in (exits, persist, sockets):
        os.makedirs(directory, exist_ok=True)
    result: dict[str, Any] = {}
    try:
        create_msg, rc = conmon_run(
            [
                "-b",
                bundle,
                "-c",
                container_id,
                "-u",
                container_id,
                "-n",
                container_id,
                "--exit-dir",
                exits,
                "-l",
                os.path.join(work, "ctr.log"),
                "--log-level",
                "debug",
                "-P",
                os.path.join(bundle, "conmon-pidfile"),
                "-p",
                os.path.join(bundle, "pidfile"),
                "--persist-dir",
                persist,
                "-r",
                job["runtime"],
                "--runtime-arg",
                f"--root={job['root']}",
                "--socket-dir-path",
                sockets,
            ],
            {},
        )
        result["create"] = create_msg
        result["conmon_rc"] = rc
        if create_msg.get("pid", -1) <= 0:
            return 0
        start = subprocess.run([*runtime, "start", container_id], capture_output=True, text=True)
        result["start_rc"] = start.returncode
        time.sleep(0.3)
        state = subprocess.run([*runtime, "state", container_id], capture_output=True, text=True)
        result["state"] = json.loads(state.stdout)["status"] if state.returncode == 0 else None
        exec_msg, rc = conmon_run(
            [
                "-c",
                container_id,
                "-n",
                container_id,
                "-r",
                job["runtime"],
                "-p",
                os.path.join(work, "exec-pid"),
                "-e",
                "-l",
                os.path.join(work, "exec.log"),
                "--socket-dir-path",
                sockets,
                "--log-level",
                "debug",
                "--sync",
                "--exec-process-spec",
                job["exec_spec"],
                "--runtime-arg",
                f"--root={job['root']}",
            ],
            {},
        )
        result["exec"] = exec_msg
        with open(os.path.join(work, "exec.log")) as log:
            result["exec_log"] = log.read()
        kill = subprocess.run([*runtime, "kill", container_id, "KILL"], capture_output=True)
        result["kill_rc"] = kill.returncode
        exit_file = os.path.join(exits, container_id)
        deadline = time.monotonic() + 20
        while not os.path.exists(exit_file) and time.monotonic() < deadline:
            reap(time.monotonic() + 0.05)
            time.sleep(0.02)
        time.sleep(0.1)
        with open(exit_file) as f:
            result["exit_file"] = f.read()
        with open(os.path.join(persist, "exit")) as f:
            result["persist_exit"] = f.read()
        with open(os.path.join(work, "ctr.log")) as log:
            result["ctr_log"] = log.read()
        state = subprocess.run([*runtime, "state", container_id], capture_output=True, text=True)
        result["state_after"] = (
            json.loads(state.stdout)["status"] if state.returncode == 0 else None
        )
        reap(time.monotonic() + 2)
        delete = subprocess.run([*runtime, "delete", container_id], capture_output=True, text=True)
        result["delete_rc"] = delete.returncode
        result["delete_stderr"] = delete.stderr
        return 0
    finally:
        subprocess.run([*runtime, "delete", "--force", container_id], capture_output=True)
        reap(time.monotonic() + 5)
        print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
