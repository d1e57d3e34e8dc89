"""The daemon lock: one holder, its pid named to the next, gone when the holder dies."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

import pytest

from common.pidlock import LockHeldError, PidLock

HOLD = """
import sys, time
from common.pidlock import PidLock
PidLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_second_holder_refused_with_first_pid(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "crib.pid")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as err:
            PidLock(path).acquire()
        assert err.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(err.value)
        # SIGKILL: the kernel drops the flock, the next one gets it.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        lock = PidLock(path)
        lock.acquire()
        assert pathlib.Path(path).read_text().strip() != str(holder.pid)
        lock.release()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
