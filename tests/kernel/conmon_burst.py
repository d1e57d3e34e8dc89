"""Many containers created at once through conmon (as CRI-O and crib drive it), then started
and deleted; one subreaper process so every conmon and container process is reaped here.

    python -m tests.kernel.conmon_burst '{"runtime": PATH, "root": R, "work": DIR,
        "containers": [{"id": ID, "bundle": B}, ...], "concurrency": N, "deadline_s": S}'

Each create must report the init's pid on the sync pipe within `deadline_s`. One that
does not is a hang: its conmon's process tree is described (state, wchan, kernel stack,
open fds of each process, what `py-spy dump` would need) and killed, so the caller can
fail with the evidence and nothing is left running. Prints one JSON object:

    {"created": {ID: {"pid": N, "seconds": S, "init_fds": {FD: TARGET}}},
     "failed": {ID: MESSAGE}, "hung": {ID: [PROCESS...]}, "running": [ID...],
     "deleted": [ID...]}
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren... (from /proc/PID/task/*/children)."""
    found = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as children:
                kids = [int(p) for p in children.read().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def describe(pid: int) -> dict[str, Any]:
    """What a hung process is doing: state, wchan, kernel stack, fds (marked close-on-exec)."""

    def read(name: str) -> str:
        try:
            with open(f"/proc/{pid}/{name}", "rb") as proc_file:
                return proc_file.read().decode(errors="replace").replace("\0", " ").strip()
        except OSError as err:
            return f"<{err.strerror}>"

    fds = {}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(line for line in info if line.startswith("flags:"))
            except (OSError, StopIteration):
                continue
            # fdinfo's flags are octal; O_CLOEXEC is 02000000 (open(2)).
            cloexec = int(flags.split()[1], 8) & 0o2000000
            fds[fd] = target + (" (cloexec)" if cloexec else "")
    except OSError:
        pass
    stat = read("stat")
    return {
        "pid": pid,
        "cmdline": read("cmdline"),
        "state": stat[stat.rfind(")") + 2 :].split(" ", 1)[0] if ")" in stat else "",
        "wchan": read("wchan"),
        "stack": read("stack"),
        "fds": fds,
    }


def conmon_create(
    job: dict[str, Any], container_id: str, bundle: str, deadline_s: float
) -> dict[str, Any]:
    """conmon create with CRI-O's pipes; the first sync message, or the hung tree."""
    work = job["work"]
    sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    start_parent, start_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "_OCI_SYNCPIPE": str(sync_child.fileno()),
        "_OCI_STARTPIPE": str(start_child.fileno()),
    }
    argv = [
        "conmon",
        "-b", bundle,
        "-c", container_id,
        "-u", container_id,
        "-n", container_id,
        "--exit-dir", os.path.join(work, "exits"),
        "-l", os.path.join(bundle, "ctr.log"),
        "--log-level", "debug",
        "-P", os.path.join(bundle, "conmon-pidfile"),
        "-p", os.path.join(bundle, "pidfile"),
        "--persist-dir", bundle,
        "-r", job["runtime"],
        "--runtime-arg", f"--root={job['root']}",
        "--socket-dir-path", os.path.join(work, "sockets"),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=bundle,
        pass_fds=(sync_child.fileno(), start_child.fileno()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sync_child.close()
    start_child.close()
    start_parent.sendall(b"\0")
    start_parent.close()
    data = b""
    try:
        sync_parent.settimeout(deadline_s)
        while not data.endswith(b"\n"):
            chunk = sync_parent.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        proc.wait(timeout=10)
        return {"hung": _kill_tree(bundle)}
    finally:
        sync_parent.close()
    proc.wait(timeout=10)
    seconds = time.monotonic() - started
    message = json.loads(data.splitlines()[0]) if data.strip() else {}
    pid = message.get("pid", -1)
    if not isinstance(pid, int) or pid <= 0:
        return {"failed": str(message.get("message", "conmon reported no pid"))}
    return {"pid": pid, "seconds": seconds, "init_fds": settled_fds(pid)}


def settled_fds(init_pid: int) -> dict[str, str]:
    """The init's fds once it waits for `start` (in open(exec.fifo): wchan
    wait_for_partner); right after create it may still be closing its sync socket."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if describe(init_pid)["wchan"] == "wait_for_partner":
            break
        time.sleep(0.01)
    fds: dict[str, str] = describe(init_pid)["fds"]
    return fds


def _kill_tree(bundle: str) -> list[dict[str, Any]]:
    """Describe, then SIGKILL, the monitor conmon of `bundle` and everything below it."""
    try:
        with open(os.path.join(bundle, "conmon-pidfile")) as pid_file:
            conmon = int(pid_file.read())
    except (OSError, ValueError):
        return []
    tree = [conmon, *descendants(conmon)]
    evidence = [describe(pid) for pid in tree]
    for pid in reversed(tree):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return evidence


def reap_until_alone(deadline_s: float) -> None:
    """Reap every child (conmons re-parented here) until none is left or time is up."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def main() -> int:
    job = json.loads(sys.argv[1])
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for name in ("exits", "sockets"):
        os.makedirs(os.path.join(job["work"], name), exist_ok=True)
    runtime = [job["runtime"], "--root", job["root"]]
    result: dict[str, Any] = {"created": {}, "failed": {}, "hung": {}, "running": [], "deleted": []}
    containers = job["containers"]
    try:
        with concurrent.futures.ThreadPoolExecutor(job["concurrency"]) as pool:
            outcomes = pool.map(
                lambda c: (c["id"], conmon_create(job, c["id"], c["bundle"], job["deadline_s"])),
                containers,
            )
            for container_id, outcome in outcomes:
                if "hung" in outcome:
                    result["hung"][container_id] = outcome["hung"]
                elif "failed" in outcome:
                    result["failed"][container_id] = outcome["failed"]
                else:
                    result["created"][container_id] = outcome
        for container_id in result["created"]:
            start = subprocess.run([*runtime, "start", container_id], capture_output=True)
            state = subprocess.run([*runtime, "state", container_id], capture_output=True)
            if start.returncode == 0 and json.loads(state.stdout)["status"] == "running":
                result["running"].append(container_id)
    finally:
        for container in containers:
            delete = subprocess.run(
                [*runtime, "delete", "--force", container["id"]], capture_output=True
            )
            if delete.returncode == 0:
                result["deleted"].append(container["id"])
        reap_until_alone(20)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
