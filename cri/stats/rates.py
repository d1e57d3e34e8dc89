"""usage_nano_cores: the CPU rate between two samples of the cumulative usage.

kubelet uses `usage_nano_cores` as the runtime gives it (cri_stats_provider.go reads the
runtime's value when set, and computes its own only when it is missing). So crib keeps
one previous sample per object and gives the rate since it, never a made-up value:

    sample 1 (t0, u0) ─► remembered; no rate yet (the field stays unset)
    sample 2 (t1, u1) ─► rate = (u1 - u0) / (t1 - t0) core-ns per s; (t1, u1) remembered
    sample 3 within MIN_WINDOW_S of the remembered one ─► the last rate again

The minimum window keeps two callers a few milliseconds apart (crictl next to kubelet's
10 s eviction loop) from turning the rate into noise. A counter that went backwards (a
container restarted in a reused cgroup) starts over.
"""

from __future__ import annotations

import dataclasses
import threading

MIN_WINDOW_S = 1.0
NS_PER_S = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class _Sample:
    timestamp_ns: int
    usage_ns: int
    rate: int | None


class CpuRates:
    """The previous CPU sample of each object (container or sandbox), thread safe."""

    def __init__(self, min_window_s: float = MIN_WINDOW_S) -> None:
        self.min_window_ns = int(min_window_s * NS_PER_S)
        self._samples: dict[str, _Sample] = {}
        self._lock = threading.Lock()

    def update(self, key: str, timestamp_ns: int, usage_ns: int) -> int | None:
        """Record a sample; the rate in nano cores since the previous one, if known."""
        with self._lock:
            previous = self._samples.get(key)
            if previous is None or usage_ns < previous.usage_ns:
                self._samples[key] = _Sample(timestamp_ns, usage_ns, None)
                return None
            elapsed_ns = timestamp_ns - previous.timestamp_ns
            if elapsed_ns < self.min_window_ns:
                return previous.rate
            rate = (usage_ns - previous.usage_ns) * NS_PER_S // elapsed_ns
            self._samples[key] = _Sample(timestamp_ns, usage_ns, rate)
            return rate

    def forget(self, key: str) -> None:
        """Drop an object's sample (it was removed)."""
        with self._lock:
            self._samples.pop(key, None)

    def keep_only(self, keys: set[str]) -> None:
        """Drop the samples of every object not in `keys`."""
        with self._lock:
            for key in [k for k in self._samples if k not in keys]:
                del self._samples[key]
