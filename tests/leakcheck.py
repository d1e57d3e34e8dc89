"""Kernel objects a test tier may leave behind, snapshotted before and after it.

Other helpers run tests on this machine at the same time, so only objects carrying our
names count: anything with the mark (`cpod` for pod tests, `cctr` for container tests) in
its name or path (netns, links, mounts, cgroups, processes started under /tmp/<mark>-*),
veths enslaved to a bridge of ours, and iptables rules naming our network or test range
(10.123.0.0/16 for pods, 10.124.0.0/16 for containers). `no_leaks` checks the pod marks,
`leak_check(mark, test_range)` makes the same fixture for another mark.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import subprocess
from collections.abc import Iterator

import pytest

MARK = "cpod"
TEST_RANGE = "10.123."


@dataclasses.dataclass(frozen=True)
class Snapshot:
    netns: frozenset[str]
    links: frozenset[str]
    iptables: frozenset[str]
    cgroups: frozenset[str]
    mounts: frozenset[str]
    processes: frozenset[str]

    def new_since(self, before: Snapshot) -> dict[str, list[str]]:
        """What this snapshot has that `before` did not, by kind (empty kinds left out)."""
        out = {}
        for field in dataclasses.fields(self):
            added = sorted(getattr(self, field.name) - getattr(before, field.name))
            if added:
                out[field.name] = added
        return out


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return ""


def _links(mark: str = MARK) -> set[str]:
    found = set()
    for line in _run("ip", "-o", "link", "show").splitlines():
        parts = line.split()
        name = parts[1].rstrip(":").split("@")[0]
        master = parts[parts.index("master") + 1] if "master" in parts else ""
        if mark in name or mark in master:
            found.add(f"{name} master={master}")
    return found


def _iptables(mark: str = MARK, test_range: str = TEST_RANGE) -> set[str]:
    found = set()
    for line in _run("iptables-save").splitlines():
        if line.startswith("-A") and (mark in line or test_range in line):
            found.add(line)
    return found


def _cgroups(mark: str = MARK) -> set[str]:
    found = set()
    for hierarchy in glob.glob("/sys/fs/cgroup/*/"):
        for path in glob.glob(os.path.join(hierarchy, f"*{mark}*")):
            found.add(path)
            found.update(
                p for p in glob.glob(os.path.join(path, "**"), recursive=True) if os.path.isdir(p)
            )
    return found


def _mounts(mark: str = MARK) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f if mark in line.split()[4]}


def _processes(mark: str = MARK) -> set[str]:
    found = set()
    for stat_path in glob.glob("/proc/[0-9]*/stat"):
        pid_dir = os.path.dirname(stat_path)
        try:
            with open(stat_path) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(os.path.join(pid_dir, "cmdline"), "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state != "Z" and f"/tmp/{mark}-" in cmdline and "pytest" not in cmdline:
            found.add(f"{os.path.basename(pid_dir)} {cmdline[:200]}")
    return found


def snapshot(mark: str = MARK, test_range: str = TEST_RANGE) -> Snapshot:
    """The kernel objects named with `mark` (or in `test_range`) present now."""
    return Snapshot(
        netns=frozenset(n for n in _run("ip", "netns", "list").split() if mark in n),
        links=frozenset(_links(mark)),
        iptables=frozenset(_iptables(mark, test_range)),
        cgroups=frozenset(_cgroups(mark)),
        mounts=frozenset(_mounts(mark)),
        processes=frozenset(_processes(mark)),
    )


def leak_check(mark: str, test_range: str) -> Iterator[None]:
    """Fail at the end if objects named with `mark` were left behind (a fixture body)."""
    if os.geteuid() != 0:
        yield
        return
    before = snapshot(mark, test_range)
    yield
    leaked = snapshot(mark, test_range).new_since(before)
    assert not leaked, f"left behind by this module: {leaked}"


@pytest.fixture(scope="module")
def no_leaks() -> Iterator[None]:
    """Fail the module's last test if the module left cpod-named kernel objects behind."""
    yield from leak_check(MARK, TEST_RANGE)
