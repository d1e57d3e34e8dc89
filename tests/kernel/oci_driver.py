"""Run one container through a runc-compatible runtime, the way a tiny conmon would.

    python tests/kernel/oci_driver.py '{"runtime": "runc", "root": R, "bundle": B, "id": ID,
                                        "exec": [PROCESS_JSON_PATH...], "console": false}'

A separate process because it makes itself a child subreaper (prctl(2)): the container's
init re-parents to it when `create` exits, so it can wait for the init, read its exit
status and reap it (PID 1 of this machine does not reap reliably). It prints one JSON
object: create's exit code and stderr, the container's stdout/stderr and exit code, and
each exec's output and exit code. It always runs `delete --force` at the end.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def read_all(fd: int, deadline: float) -> bytes:
    chunks = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def wait_pid(pid: int, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def console_listener(tmp: str) -> tuple[socket.socket, str]:
    path = os.path.join(tmp, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    return listener, path


def receive_master(listener: socket.socket) -> int:
    listener.settimeout(10)
    conn, _ = listener.accept()
    with conn:
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    return fds[0]


def run_exec(
    runtime: list[str], container_id: str, process_file: str, timeout_s: float
) -> dict[str, Any]:
    proc = subprocess.run(
        [*runtime, "exec", "--process", process_file, container_id],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    return {
        "exit_code": proc.returncode,
        "stdout": proc.stdout.decode(errors="replace"),
        "stderr": proc.stderr.decode(errors="replace"),
    }


def main() -> int:
    job = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    runtime = [job["runtime"], "--root", job["root"]]
    container_id = job["id"]
    timeout_s = float(job.get("timeout_s", 30))
    deadline = time.monotonic() + timeout_s
    result: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix="crt-drv-")
    pid_file = os.path.join(tmp, "pid")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    args = [*runtime, "create", "--bundle", job["bundle"], "--pid-file", pid_file]
    listener = None
    if job.get("console"):
        listener, sock_path = console_listener(tmp)
        args += ["--console-socket", sock_path]
    args.append(container_id)
    try:
        create = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w)
        master = None
        if listener is not None:
            try:
                master = receive_master(listener)
            except (OSError, IndexError):
                master = None
        create_rc = create.wait(timeout=timeout_s)
        os.close(out_w)
        os.close(err_w)
        result["create_exit_code"] = create_rc
        if create_rc != 0:
            result["create_stderr"] = read_all(err_r, deadline).decode(errors="replace")
            return 0
        with open(pid_file) as f:
            init_pid = int(f.read())
        result["state_created"] = json.loads(
            subprocess.run(
                [*runtime, "state", container_id], capture_output=True, check=True
            ).stdout
        )["status"]
        start = subprocess.run([*runtime, "start", container_id], capture_output=True, check=False)
        result["start_exit_code"] = start.returncode
        execs = []
        for process_file in job.get("exec", []):
            time.sleep(0.1)
            execs.append(run_exec(runtime, container_id, process_file, timeout_s))
        if execs:
            result["execs"] = execs
        if job.get("kill_after_exec"):
            subprocess.run([*runtime, "kill", container_id, "KILL"], check=False)
        source = master if master is not None else out_r
        result["stdout"] = read_all(source, deadline).decode(errors="replace").replace("\r\n", "\n")
        result["exit_code"] = wait_pid(init_pid, deadline)
        result["stderr"] = read_all(err_r, time.monotonic() + 0.5).decode(errors="replace")
        state = subprocess.run([*runtime, "state", container_id], capture_output=True, check=False)
        result["state_after"] = (
            json.loads(state.stdout)["status"] if state.returncode == 0 else None
        )
        return 0
    finally:
        delete = subprocess.run(
            [*runtime, "delete", "--force", container_id], capture_output=True, check=False
        )
        result["delete_exit_code"] = delete.returncode
        # Reap anything else that re-parented to us.
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        print(json.dumps(result))
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
