"""Readiness of the runtime and of the network, as Status reports them to kubelet.

Each check returns a `Condition`; a false one carries a CamelCase reason and a message
an operator can act on (which binary, which directory).
"""

from __future__ import annotations

import dataclasses
import os

import cni.config
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


def network_condition(config: Config) -> Condition:
    """Ready when a network configuration is usable: the conf dir's first valid network,
    or crib's default network, with every plugin binary present."""
    found = cni.config.discover(config.cni.conf_dir)
    network = found.network
    if network is None:
        net = config.cni.default_network
        network = cni.config.default_network(net.bridge, net.subnet)
    missing = cni.config.missing_plugins(network, config.cni.bin_dirs)
    if missing:
        return Condition(
            NETWORK_READY,
            False,
            "NetworkPluginNotReady",
            f"network {network.name!r} from {network.source}: CNI plugin binaries"
            f" {', '.join(missing)} not found in {':'.join(config.cni.bin_dirs)}",
        )
    return Condition(NETWORK_READY, True)
