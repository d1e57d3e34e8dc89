"""Helpers for the stats, events, Stream* and metrics e2e tests: a crib (prefix `cobs`,
network 10.126.0.0/16) pulling the container tests' images, and the kernel's own view of
a container's cgroup that the tests compare crib's answers with."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from tests.e2e.containers import CtrCrib
from tests.e2e.pods import pod_crib
from tests.registry import Registry

PREFIX = "cobs"
TEST_RANGE = "10.126."
CGROUP_ROOT = "/sys/fs/cgroup"


@contextlib.contextmanager
def obs_crib(handler: str, registry: Registry, **config: Any) -> Iterator[CtrCrib]:
    """A started crib (prefix cobs) that pulls from `registry`; cleaned up afterwards."""
    settings: dict[str, Any] = {"registries": {registry.host: {"insecure": True}}}
    settings.update(config)
    with pod_crib(handler, prefix=PREFIX, **settings) as pods:
        yield CtrCrib(pods, registry)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _keyed(path: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in _read(path).splitlines())}


class KernelView:
    """A cgroup as the kernel shows it (the test's own reading, not crib's code)."""

    def __init__(self, cgroups_path: str) -> None:
        self.inner = cgroups_path.lstrip("/")
        self.unified = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))

    def _file(self, controller: str, name: str) -> str:
        if self.unified:
            return os.path.join(CGROUP_ROOT, self.inner, name)
        return os.path.join(CGROUP_ROOT, controller, self.inner, name)

    def cpu_usage_ns(self) -> int:
        """Cumulative CPU time (cpuacct.usage, v2 cpu.stat usage_usec)."""
        if self.unified:
            return _keyed(self._file("cpu", "cpu.stat"))["usage_usec"] * 1000
        return int(_read(self._file("cpuacct", "cpuacct.usage")))

    def memory(self) -> tuple[int, int]:
        """(usage, working set = usage - inactive file)."""
        if self.unified:
            usage = int(_read(self._file("memory", "memory.current")))
            inactive = _keyed(self._file("memory", "memory.stat"))["inactive_file"]
        else:
            usage = int(_read(self._file("memory", "memory.usage_in_bytes")))
            inactive = _keyed(self._file("memory", "memory.stat"))["total_inactive_file"]
        return usage, max(0, usage - inactive)

    def timed_cpu(self) -> tuple[int, int]:
        """(wall clock ns, cpu usage ns) read together."""
        return time.time_ns(), self.cpu_usage_ns()


def within(actual: float, expected: float, fraction: float = 0.10) -> bool:
    """Whether `actual` is within `fraction` of `expected`."""
    return abs(actual - expected) <= fraction * abs(expected)
