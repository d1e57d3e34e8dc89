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


REAPED: dict[int, int] = {}


def reap_all() -> None:
    """Reap every exited child (re-parented container processes become ours): a zombie
    would keep its cgroup busy and make `delete` fail."""
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            REAPED[pid] = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        return


def wait_pid(pid: int, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        if pid in REAPED:
            return REAPED.pop(pid)
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return REAPED.pop(pid, None)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    return None


def run_reaping(args: list[str], timeout_s: float, **kwargs: Any) -> int:
    """subprocess.run, reaping other children while it runs."""
    proc = subprocess.Popen(args, **kwargs)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return proc.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                proc.kill()
                return proc.wait()
            # Not waitpid(-1): that could steal `proc` from Popen.
            for pid in list_children():
                if pid != proc.pid:
                    try:
                        done, status = os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        continue
                    if done:
                        REAPED[pid] = os.waitstatus_to_exitcode(status)


def list_children() -> list[int]:
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            fields = data[data.rindex(b")") + 2 :].split()
            if fields[1].decode() == me:
                found.append(int(name))
    return found


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


def run_steps(job: dict[str, Any]) -> int:
    """Script mode: run each step (runtime args after --root), "wait" for the init, or
    "sleep"; record rc/stdout/stderr of each; always `delete --force` at the end."""
    runtime = [job["runtime"], "--root", job["root"]]
    container_id = job["id"]
    deadline = time.monotonic() + float(job.get("timeout_s", 30))
    results: list[dict[str, Any]] = []
    init_pid = 0
    try:
        for step in job["steps"]:
            if step == ["wait"]:
                results.append({"exit_code": wait_pid(init_pid, deadline) if init_pid else None})
                continue
            if step[0] == "sleep":
                time.sleep(float(step[1]))
                results.append({})
                continue
            # Files, not pipes: a container started here inherits them and outlives the step.
            with (
                tempfile.TemporaryFile() as out,
                tempfile.TemporaryFile() as err,
                tempfile.TemporaryFile() as stdin,
            ):
                stdin.write(job.get("stdin", "").encode())
                stdin.seek(0)
                rc = run_reaping([*runtime, *step], 30, stdin=stdin, stdout=out, stderr=err)
                out.seek(0)
                err.seek(0)
                results.append(
                    {
                        "rc": rc,
                        "stdout": out.read().decode(errors="replace"),
                        "stderr": err.read().decode(errors="replace"),
                    }
                )
            if step[0] == "create" and rc == 0 and "--pid-file" in step:
                with open(step[step.index("--pid-file") + 1]) as f:
                    init_pid = int(f.read())
        return 0
    finally:
        with tempfile.TemporaryFile() as err:
            rc = run_reaping(
                [*runtime, "delete", "--force", container_id],
                30,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            err.seek(0)
            final = {"rc": rc, "stderr": err.read().decode(errors="replace")}
        if init_pid:
            wait_pid(init_pid, time.monotonic() + 10)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        print(json.dumps({"steps": results, "init_pid": init_pid, "final_delete": final}))


def main() -> int:
    job = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if "steps" in job:
        return run_steps(job)
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
        result["delete_exit_code"] = run_reaping(
            [*runtime, "delete", "--force", container_id],
            30,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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
