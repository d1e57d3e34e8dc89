"""The monitor side of containers that needs no root: conmon's control fifo (log reopen,
synchronous), and the orphan reaper crib runs as subreaper."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys
import threading
import time

import pytest

from sandbox.monitor import proc
from sandbox.monitor.conmon import Conmon, write_ctl
from sandbox.monitor.errors import MonitorError, MonitorTimeoutError


def fake_conmon_ctl(
    bundle: pathlib.Path, log: pathlib.Path, reopen: bool = True
) -> threading.Thread:
    """A thread playing conmon: reads one ctl line, then reopens the log as conmon does
    (open <log>.tmp truncated, rename over the log)."""
    os.mkfifo(bundle / "ctl")
    fd = os.open(bundle / "ctl", os.O_RDONLY | os.O_NONBLOCK)
    seen: list[bytes] = []

    def serve() -> None:
        deadline = time.monotonic() + 5
        data = b""
        while b"\n" not in data and time.monotonic() < deadline:
            try:
                data += os.read(fd, 64)
            except BlockingIOError:
                time.sleep(0.01)
        seen.append(data)
        os.close(fd)
        if reopen and data == b"2 0 0\n":
            time.sleep(0.05)
            tmp = log.with_name(log.name + ".tmp")
            tmp.write_text("")
            os.rename(tmp, log)

    thread = threading.Thread(target=serve)
    thread.seen = seen  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_reopen_log_waits_for_the_new_file(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("old\n")
    os.rename(log, tmp_path / "c.log.1")  # kubelet's rotation renames first
    thread = fake_conmon_ctl(tmp_path, log)
    conmon = Conmon("conmon", str(tmp_path / "exits"), str(tmp_path / "s"))
    asyncio.run(conmon.reopen_log(str(tmp_path), str(log)))
    assert log.exists()
    thread.join()
    assert thread.seen == [b"2 0 0\n"]  # type: ignore[attr-defined]


def test_reopen_log_of_an_unrotated_file_waits_for_a_new_inode(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("kept\n")
    before = log.stat().st_ino
    thread = fake_conmon_ctl(tmp_path, log)
    conmon = Conmon("conmon", str(tmp_path / "exits"), str(tmp_path / "s"))
    asyncio.run(conmon.reopen_log(str(tmp_path), str(log)))
    assert log.stat().st_ino != before
    thread.join()


def test_reopen_log_times_out_when_conmon_does_nothing(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "c.log"
    thread = fake_conmon_ctl(tmp_path, log, reopen=False)
    conmon = Conmon("conmon", str(tmp_path / "exits"), str(tmp_path / "s"))
    with pytest.raises(MonitorTimeoutError, match="did not reopen"):
        asyncio.run(conmon.reopen_log(str(tmp_path), str(log), timeout_s=0.3))
    thread.join()


def test_ctl_without_conmon_is_an_error_not_a_hang(tmp_path: pathlib.Path) -> None:
    os.mkfifo(tmp_path / "ctl")
    with pytest.raises(MonitorError, match="No such device or address"):
        write_ctl(str(tmp_path), 2)
    with pytest.raises(MonitorError, match="No such file"):
        write_ctl(str(tmp_path / "gone"), 2)


def spawn_exiting(code: int) -> int:
    """A direct child that exits with `code` and that nothing in this process waits for."""
    return os.posix_spawn(
        sys.executable, [sys.executable, "-c", f"raise SystemExit({code})"], dict(os.environ)
    )


def wait_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while proc.state(pid) != "Z":
        assert time.monotonic() < deadline, "child did not exit"
        time.sleep(0.01)


def test_orphan_reaper_reaps_lingering_zombies_and_hands_over_their_status() -> None:
    pid = spawn_exiting(7)
    wait_zombie(pid)
    assert pid in proc.children()
    reaper = proc.OrphanReaper()
    assert reaper.scan() == []  # a zombie is someone's for one interval
    assert proc.state(pid) == "Z"
    assert reaper.scan() == [pid]
    assert proc.state(pid) is None
    status = proc.reap_child(pid)
    assert status is not None
    assert os.waitstatus_to_exitcode(status) == 7
    assert proc.reap_child(pid) is None  # handed over once


def test_orphan_reaper_leaves_running_children_alone() -> None:
    pid = os.posix_spawn(
        sys.executable, [sys.executable, "-c", "import time; time.sleep(30)"], dict(os.environ)
    )
    try:
        reaper = proc.OrphanReaper()
        reaper.scan()
        assert reaper.scan() == []
        assert proc.state(pid) in ("R", "S")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
