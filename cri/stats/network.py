"""A pod's network counters, read without entering its network namespace.

/proc/<pid>/net/dev shows the interfaces of the network namespace `pid` lives in
(proc(5): /proc/[pid]/net is per network namespace since Linux 2.6.25), so a process
known to be in the pod's namespace is a window into it: the pause, or any running
container of the pod when the pause is gone. A pid may have been reused by a process
elsewhere: the window counts only when /proc/<pid>/ns/net is the very namespace pinned
for the pod (same device and inode as the pin, nsfs(5)).

`lo` is left out, as cAdvisor leaves it out of container network stats.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

IGNORED_INTERFACES = frozenset({"lo"})
# kubelet and containerd call the pod's interface eth0 (CNI_IFNAME).
DEFAULT_INTERFACE = "eth0"


@dataclasses.dataclass(frozen=True)
class InterfaceCounters:
    """The counters of one interface, as /proc/net/dev gives them."""

    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> list[InterfaceCounters]:
    """The interfaces of a /proc/net/dev text (two header lines, then `name: 16 numbers`)."""
    result = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 16:
            continue
        try:
            n = [int(f) for f in fields[:16]]
        except ValueError:
            continue
        result.append(
            InterfaceCounters(
                name=name.strip(),
                rx_bytes=n[0],
                rx_packets=n[1],
                rx_errors=n[2],
                rx_dropped=n[3],
                tx_bytes=n[8],
                tx_packets=n[9],
                tx_errors=n[10],
                tx_dropped=n[11],
            )
        )
    return result


def same_namespace(pid: int, pin_path: str, proc_root: str = "/proc") -> bool:
    """Whether `pid` lives in the network namespace pinned at `pin_path`."""
    try:
        pinned = os.stat(pin_path)
        current = os.stat(os.path.join(proc_root, str(pid), "ns", "net"))
    except OSError:
        return False
    return (pinned.st_dev, pinned.st_ino) == (current.st_dev, current.st_ino)


def read_pod_interfaces(
    pids: Iterable[int], pin_path: str, proc_root: str = "/proc"
) -> list[InterfaceCounters] | None:
    """The pod's interfaces (lo left out) seen through the first of `pids` that is in
    the pinned namespace; None when none of them is."""
    for pid in pids:
        if pin_path and not same_namespace(pid, pin_path, proc_root):
            continue
        try:
            with open(os.path.join(proc_root, str(pid), "net", "dev")) as f:
                text = f.read()
        except OSError:
            continue
        # The process may have exited between the check and the read, and its pid been
        # reused: check again after reading (cheap, and it closes the window).
        if pin_path and not same_namespace(pid, pin_path, proc_root):
            continue
        return [i for i in parse_net_dev(text) if i.name not in IGNORED_INTERFACES]
    return None
