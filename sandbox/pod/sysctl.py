"""Pod sysctls: only namespaced ones, only for namespaces the pod owns, only sane text.

Which sysctls are per-namespace (kernel docs, and the list kubelet and runc enforce):
    ipc   kernel.shmall kernel.shmmax kernel.shmmni kernel.shm_rmid_forced
          kernel.msgmax kernel.msgmnb kernel.msgmni kernel.sem  fs.mqueue.*
    net   net.*
    uts   kernel.hostname kernel.domainname
Anything else would change the host for every pod, and is refused. A net sysctl on a
host-network pod, or an ipc one on a host-IPC pod, is refused for the same reason.

Keys and values travel to the runtime as JSON (spec `linux.sysctl`), but are still checked
strictly: CVE-2022-0811 ("cr8escape") smuggled a second `key=value` through a `+` in a
value given to CRI-O's pinns. Keys are dotted (or slashed) names; values are one line of
printable text without `+` or `=`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sandbox.pod.errors import PodConfigError

IPC_EXACT = frozenset(
    {
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    }
)
IPC_PREFIXES = ("fs.mqueue.",)
NET_PREFIXES = ("net.",)
UTS_EXACT = frozenset({"kernel.hostname", "kernel.domainname"})

_KEY = re.compile(r"^[a-z0-9_][a-z0-9_.\-/]*$", re.IGNORECASE)
_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
MAX_KEY_LEN = 256
MAX_VALUE_LEN = 4096


def namespace_of(key: str) -> str | None:
    """The namespace a sysctl belongs to ("ipc", "net", "uts"), or None if not namespaced."""
    dotted = key.replace("/", ".")
    if dotted in IPC_EXACT or dotted.startswith(IPC_PREFIXES):
        return "ipc"
    if dotted.startswith(NET_PREFIXES):
        return "net"
    if dotted in UTS_EXACT:
        return "uts"
    return None


def validate(
    sysctls: Mapping[str, str], host_network: bool, host_ipc: bool, field: str = "sysctls"
) -> dict[str, str]:
    """Check pod sysctls; returns them unchanged or raises `PodConfigError` naming one."""
    for key, value in sysctls.items():
        if (
            not key
            or len(key) > MAX_KEY_LEN
            or not _KEY.match(key)
            or ".." in key
            or "//" in key
            or key.endswith((".", "/"))
        ):
            raise PodConfigError(f"{field}: bad sysctl name {key!r}")
        if len(value) > MAX_VALUE_LEN or not _VALUE.match(value) or "+" in value or "=" in value:
            raise PodConfigError(
                f"{field}[{key}]: bad value {value!r} (one line of printable text without"
                " '+' or '=')"
            )
        kind = namespace_of(key)
        if kind is None:
            raise PodConfigError(
                f"{field}: sysctl {key!r} is not namespaced; setting it would change the host"
            )
        if kind == "net" and host_network:
            raise PodConfigError(
                f"{field}: sysctl {key!r} cannot be set on a pod in the host network namespace"
            )
        if kind == "uts" and host_network:
            raise PodConfigError(
                f"{field}: sysctl {key!r} cannot be set on a pod in the host UTS namespace"
            )
        if kind == "ipc" and host_ipc:
            raise PodConfigError(
                f"{field}: sysctl {key!r} cannot be set on a pod in the host IPC namespace"
            )
    return dict(sysctls)
