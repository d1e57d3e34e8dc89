"""Readiness of the runtime and of the network, as Status reports them to kubelet.

Each check returns a `Condition`; a false one carries a CamelCase reason and a message
an operator can act on (which binary, which directory).
"""

from __future__ import annotations

import dataclasses
import os

from cni.manager import CniManager
from common.binaries import resolve
from cri.config import Config

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"


@dataclasses.dataclass(frozen=True)
class Condition:
    """One Status condition."""

    type: str
    status: bool
    reason: str = ""
    message: str = ""


def runtime_condition(config: Config) -> Condition:
    """Ready when the default runtime handler, conmon and the pause binary resolve and the
    state directories are writable."""
    missing = []
    handler = config.runtimes[config.default_runtime]
    for key, binary in (
        (f"runtimes.{config.default_runtime}.path", handler.path),
        ("conmon", config.conmon),
        ("pause", config.pause[0]),
    ):
        if resolve(binary) is None:
            missing.append(f"{binary} ({key})")
    if missing:
        return Condition(
            RUNTIME_READY,
            False,
            "RuntimeBinaryMissing",
            f"not found: {', '.join(missing)}",
        )
    for key in ("root", "state"):
        path = getattr(config, key)
        if not os.access(path, os.W_OK):
            return Condition(
                RUNTIME_READY, False, "StateDirNotWritable", f"{key} {path} is not writable"
            )
    return Condition(RUNTIME_READY, True)


async def network_condition(cni: CniManager) -> Condition:
    """Ready when a network configuration is usable: the conf dir's first valid network,
    or crib's default network, with every plugin binary present (and, for spec 1.1.0
    networks, the plugins' STATUS succeeding). The same manager attaches pods."""
    readiness = await cni.status()
    return Condition(NETWORK_READY, readiness.ready, readiness.reason, readiness.message)
