"""linux.devices and linux.resources.devices: device nodes and the device cgroup rules.

The device cgroup starts from "deny everything" ({"allow": false, "access": "rwm"}); the
runtime adds the devices every container needs (/dev/null, /dev/zero, ... as runc's
AllowedDevices). Each kubelet `Device` then adds its node(s) and one allow rule per node
with the requested permissions. A host path that is a directory gives every device below
it (containerd's WithDevices). Privileged containers get every host device and a single
"allow all" rule (CRI: "All devices from the host's /dev are available").
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from cri.specgen.errors import SpecInvalidError, SpecUnsupportedError
from cri.specgen.inputs import HostDevice, Spec, SpecInputs
from cri.specgen.mounts import clean_container_path

DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def _permissions(value: str, container_path: str) -> str:
    """Device cgroup access string: one or more of r, w, m; empty means rwm (containerd)."""
    if not value:
        return "rwm"
    if set(value) - set("rwm") or len(set(value)) != len(value):
        raise SpecInvalidError(
            f"device {container_path!r} has permissions {value!r}; use one or more of r, w, m"
        )
    return "".join(c for c in "rwm" if c in value)


def _device_entry(device: HostDevice, container_path: str) -> dict[str, object]:
    return {
        "path": container_path,
        "type": device.type,
        "major": device.major,
        "minor": device.minor,
        "fileMode": device.file_mode,
        "uid": device.uid,
        "gid": device.gid,
    }


def _container_paths(
    found: Sequence[HostDevice], host_path: str, container_path: str
) -> list[tuple[HostDevice, str]]:
    """Map each found node to its container path: a single node takes `container_path`,
    nodes found below a directory keep their path relative to it."""
    if len(found) == 1 and found[0].path == host_path:
        return [(found[0], container_path)]
    base = host_path.rstrip("/")
    mapped = []
    for device in found:
        relative = posixpath.relpath(device.path, base)
        mapped.append((device, posixpath.normpath(posixpath.join(container_path, relative))))
    return mapped


def with_devices(spec: Spec, inputs: SpecInputs) -> Spec:
    """Device nodes from the config's Devices (all host devices when privileged).

    CDI devices (ContainerConfig.CDI_devices) need a CDI spec registry crib does not have:
    they are refused rather than silently dropped (containerd with CDI disabled does too).
    """
    if inputs.config.CDI_devices:
        names = ", ".join(device.name for device in inputs.config.CDI_devices)
        raise SpecUnsupportedError(f"CDI devices ({names}) were requested but CDI is not supported")
    devices: list[dict[str, object]] = []
    rules: list[dict[str, object]] = [dict(DENY_ALL)]
    seen: set[str] = set()
    for requested in inputs.config.devices:
        host_path = requested.host_path
        if not host_path or not host_path.startswith("/"):
            raise SpecInvalidError(f"device host_path {host_path!r} is not an absolute path")
        container_path = clean_container_path(
            requested.container_path or host_path, "device container_path"
        )
        access = _permissions(requested.permissions, container_path)
        found = inputs.host.lookup_devices(host_path)
        if not found:
            raise SpecInvalidError(f"device host_path {host_path!r} holds no device node")
        for device, path in _container_paths(found, host_path, container_path):
            if path in seen:
                continue
            seen.add(path)
            devices.append(_device_entry(device, path))
            rules.append(
                {
                    "allow": True,
                    "type": device.type,
                    "major": device.major,
                    "minor": device.minor,
                    "access": access,
                }
            )
    if inputs.privileged:
        for device in inputs.host.host_devices():
            if device.path in seen:
                continue
            seen.add(device.path)
            devices.append(_device_entry(device, device.path))
        rules = [dict(ALLOW_ALL)]
    spec["linux"]["devices"] = devices
    spec["linux"].setdefault("resources", {})["devices"] = rules
    return spec
