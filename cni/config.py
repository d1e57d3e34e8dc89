"""Network configuration discovery, as libcni and ocicni do it.

The conf dir is listed, files ending in .conf, .conflist or .json are taken in
lexicographic order, and the first one that parses as a valid network is used.
A .conf file holds one plugin and is read as a list of one. When the dir holds
no usable network, crib falls back to its embedded default network (it never
writes into the conf dir).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Sequence
from typing import Any

from cni.errors import CniConfigError

CONF_EXTENSIONS = (".conf", ".conflist", ".json")
DEFAULT_NETWORK_SOURCE = "<crib default network>"
LOOPBACK_NETWORK_SOURCE = "<crib loopback network>"
# Loopback is not part of a network list: the runtime sets up `lo` with it separately
# (as ocicni and go-cni do), so every pod has a working 127.0.0.1.
LOOPBACK_PLUGIN = "loopback"
LOOPBACK_NETWORK_NAME = "cni-loopback"
# The spec versions crib speaks, oldest first (SPEC.md "Version considerations").
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def version_key(version: str) -> tuple[int, ...]:
    """`"0.3.1"` -> (0, 3, 1), for comparing spec versions; junk sorts first."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


def at_least(version: str, minimum: str) -> bool:
    """Whether spec `version` is `minimum` or newer."""
    return version_key(version) >= version_key(minimum)


def pick_version(versions: Sequence[str]) -> str | None:
    """The newest of `versions` that crib speaks, or None (SPEC.md: `cniVersions`)."""
    ours = [v for v in versions if v in SUPPORTED_VERSIONS]
    return max(ours, key=version_key) if ours else None


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """One network list: its name, version, plugin configurations and where it came from."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    source: str
    raw: dict[str, Any]

    def plugin_types(self) -> list[str]:
        """The plugin binaries this network runs, in order."""
        return [str(p["type"]) for p in self.plugins]

    @property
    def disable_check(self) -> bool:
        """`disableCheck`: the operator asked that CHECK never be run on this network."""
        return self.raw.get("disableCheck") is True

    @property
    def disable_gc(self) -> bool:
        """`disableGC` (spec 1.1.0): GC must not be run on this network."""
        return self.raw.get("disableGC") is True

    def to_json(self) -> dict[str, Any]:
        """The configuration as written, plus where it came from (for records and caches)."""
        return {"source": self.source, "single_plugin": "plugins" not in self.raw, "raw": self.raw}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkConfig:
        """The inverse of `to_json` (the document is checked again)."""
        return parse(data["raw"], str(data["source"]), bool(data["single_plugin"]))


def list_conf_files(conf_dir: str) -> list[str]:
    """Network configuration files in `conf_dir`, in the order libcni considers them."""
    try:
        names = os.listdir(conf_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        os.path.join(conf_dir, name)
        for name in sorted(names)
        if name.endswith(CONF_EXTENSIONS) and os.path.isfile(os.path.join(conf_dir, name))
    ]


def parse(data: dict[str, Any], source: str, single_plugin: bool) -> NetworkConfig:
    """Check one configuration document; `single_plugin` for the .conf form."""
    if not isinstance(data, dict):
        raise CniConfigError(f"network config {source}: not a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise CniConfigError(f"network config {source}: missing 'name'")
    version = data.get("cniVersion", "0.1.0" if single_plugin else "")
    versions = data.get("cniVersions")
    if versions is not None:
        # Spec 1.1.0: a list offers several versions; the runtime picks the newest it speaks.
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise CniConfigError(f"network config {source}: 'cniVersions' must list strings")
        picked = pick_version(versions)
        if picked is None:
            raise CniConfigError(
                f"network config {source}: none of cniVersions {versions} is supported"
                f" (crib speaks {', '.join(SUPPORTED_VERSIONS)})"
            )
        version = picked
    if not isinstance(version, str) or not version:
        raise CniConfigError(f"network config {source}: missing 'cniVersion'")
    if version not in SUPPORTED_VERSIONS:
        raise CniConfigError(
            f"network config {source}: cniVersion {version!r} is not supported"
            f" (crib speaks {', '.join(SUPPORTED_VERSIONS)})"
        )
    if single_plugin:
        plugins: list[Any] = [data]
    else:
        plugins = data.get("plugins")  # type: ignore[assignment]
        if not isinstance(plugins, list) or not plugins:
            raise CniConfigError(f"network config {source}: 'plugins' must be a non-empty list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str):
            raise CniConfigError(f"network config {source}: plugins[{i}] has no 'type'")
        if "/" in plugin["type"] or plugin["type"] in ("", ".", ".."):
            raise CniConfigError(
                f"network config {source}: plugins[{i}] type {plugin['type']!r} is not a name"
            )
    return NetworkConfig(name, version, tuple(plugins), source, data)


def load_file(path: str) -> NetworkConfig:
    """Read and check one configuration file."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as err:
        raise CniConfigError(f"network config {path}: {err.strerror}") from None
    except ValueError as err:
        raise CniConfigError(f"network config {path}: not JSON: {err}") from None
    return parse(data, path, single_plugin=not path.endswith(".conflist"))


@dataclasses.dataclass(frozen=True)
class Discovery:
    """The outcome of scanning the conf dir: the network (or None) and why files were skipped."""

    network: NetworkConfig | None
    skipped: tuple[str, ...]


def discover(conf_dir: str) -> Discovery:
    """The first valid network in `conf_dir`, plus a reason for each file skipped before it."""
    skipped: list[str] = []
    for path in list_conf_files(conf_dir):
        try:
            return Discovery(load_file(path), tuple(skipped))
        except CniConfigError as err:
            skipped.append(str(err))
    return Discovery(None, tuple(skipped))


def default_network(bridge: str, subnet: str, cni_version: str = "1.0.0") -> NetworkConfig:
    """crib's embedded network: a bridge with a gateway, masquerade, host-local IPAM, portmap."""
    net = ipaddress.ip_network(subnet)
    default_route = "0.0.0.0/0" if net.version == 4 else "::/0"
    data: dict[str, Any] = {
        "cniVersion": cni_version,
        "name": "crib",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(net)}]],
                    "routes": [{"dst": default_route}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }
    return parse(data, DEFAULT_NETWORK_SOURCE, single_plugin=False)


def loopback_network(cni_version: str = "1.0.0") -> NetworkConfig:
    """The network that brings up the pod's `lo` (CNI_IFNAME=lo)."""
    data = {
        "cniVersion": cni_version,
        "name": LOOPBACK_NETWORK_NAME,
        "plugins": [{"type": LOOPBACK_PLUGIN}],
    }
    return parse(data, LOOPBACK_NETWORK_SOURCE, single_plugin=False)


def find_plugin(plugin_type: str, bin_dirs: Sequence[str]) -> str | None:
    """The path of plugin binary `plugin_type` in the first bin dir that has it."""
    for bin_dir in bin_dirs:
        path = os.path.join(bin_dir, plugin_type)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def missing_plugins(network: NetworkConfig, bin_dirs: Sequence[str]) -> list[str]:
    """Plugin types (the network's, their IPAM, and loopback) with no binary in `bin_dirs`."""
    needed = [LOOPBACK_PLUGIN, *network.plugin_types()]
    for plugin in network.plugins:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            needed.append(ipam["type"])
    missing = []
    for plugin_type in needed:
        if plugin_type not in missing and find_plugin(plugin_type, bin_dirs) is None:
            missing.append(plugin_type)
    return missing
