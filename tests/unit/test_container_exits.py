"""Reading a container's exit from conmon's files: status, finish time, reason, OOM."""

from __future__ import annotations

import os
import pathlib
import signal

from cri.containers import exits


def write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_file_no_exit(tmp_path: pathlib.Path) -> None:
    assert exits.read_exit(str(tmp_path / "p"), str(tmp_path / "e"), str(tmp_path / "b")) is None


def test_persist_file_wins_and_gives_the_finish_time(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "p" / "exit", "3")
    write(tmp_path / "exits" / "c", "9")
    found = exits.read_exit(str(tmp_path / "p"), str(tmp_path / "exits" / "c"), str(tmp_path))
    assert found is not None
    assert found.exit_code == 3
    assert found.reason == "Error"
    assert found.finished_at_ns == os.stat(tmp_path / "p" / "exit").st_ctime_ns


def test_exit_dir_file_when_persist_dir_is_gone(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "exits" / "c", "0")
    found = exits.read_exit(str(tmp_path / "p"), str(tmp_path / "exits" / "c"), str(tmp_path))
    assert found is not None
    assert (found.exit_code, found.reason) == (0, "Completed")


def test_half_written_file_is_not_an_exit(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "p" / "exit", "")
    assert exits.read_exit(str(tmp_path / "p"), str(tmp_path / "none"), str(tmp_path)) is None


def test_oom_file_in_bundle_or_persist_dir(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "p" / "exit", "137")
    write(tmp_path / "bundle" / "oom", "")
    found = exits.read_exit(str(tmp_path / "p"), str(tmp_path / "e"), str(tmp_path / "bundle"))
    assert found is not None
    assert found.reason == "OOMKilled"
    assert exits.oom_killed(str(tmp_path / "p"), str(tmp_path / "nowhere")) is False
    write(tmp_path / "p" / "oom", "")
    assert exits.oom_killed(str(tmp_path / "p"), str(tmp_path / "nowhere")) is True


def test_wait_status_as_conmon_writes_it() -> None:
    assert exits.exit_code_of_wait_status(3 << 8) == 3
    assert exits.exit_code_of_wait_status(signal.SIGKILL) == 137
    assert exits.exit_code_of_wait_status(signal.SIGTERM) == 143
