"""Operations on a network list, as libcni performs them (libcni/api.go).

    ADD    plugins in order; each gets the previous plugin's result as `prevResult`;
           the last result is the attachment's result
    DEL    plugins in reverse order; each gets the cached ADD result as `prevResult`
           (only for lists of version >= 0.4.0, as libcni)
    CHECK  plugins in order with the cached result (>= 0.4.0; skipped with disableCheck)
    STATUS each plugin; only for lists of version >= 1.1.0 and plugins that offer 1.1.0
    GC     each plugin with `cni.dev/valid-attachments` (>= 1.1.0, not with disableGC)

The per-plugin configuration (`plugin_config`) is the plugin's object plus the list's
`cniVersion` and `name`, the runtime's capability arguments the plugin asked for under
`runtimeConfig`, and `prevResult`; `capabilities` itself is dropped. Unknown keys pass
through untouched (CNI SPEC.md section 3 "Deriving execution configuration").

Ordering is the caller's duty (SPEC.md "Lifecycle & Ordering"): one operation per
container at a time, DEL after every ADD even a failed one, GC never concurrent with
ADD/DEL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cni.config import NetworkConfig, at_least, find_plugin
from cni.errors import CniNotReadyError, CniPluginError, CniResultError
from cni.invoke import PluginExec
from cni.result import Result, parse_result

log = logging.getLogger("crib.cni")

ADD = "ADD"
DEL = "DEL"
CHECK = "CHECK"
STATUS = "STATUS"
GC = "GC"
VERSION = "VERSION"


@dataclasses.dataclass(frozen=True)
class RuntimeConf:
    """What the runtime says about one attachment (libcni RuntimeConf)."""

    container_id: str
    netns: str
    ifname: str
    # CNI_ARGS as ordered pairs; rendered `K=V;K2=V2`.
    args: tuple[tuple[str, str], ...] = ()
    # Capability arguments (CONVENTIONS.md): portMappings, bandwidth, ...
    capability_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def cni_args(self) -> str:
        """The CNI_ARGS value."""
        return ";".join(f"{key}={value}" for key, value in self.args)


def plugin_config(
    network: NetworkConfig,
    plugin: Mapping[str, Any],
    capability_args: Mapping[str, Any],
    prev_result: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The configuration one plugin reads on stdin (pure; libcni buildOneConfig)."""
    conf = {key: value for key, value in plugin.items() if key != "capabilities"}
    conf["cniVersion"] = network.cni_version
    conf["name"] = network.name
    capabilities = plugin.get("capabilities")
    if isinstance(capabilities, Mapping):
        runtime_config = {
            name: value for name, value in capability_args.items() if capabilities.get(name) is True
        }
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
    if prev_result is not None:
        conf["prevResult"] = dict(prev_result)
    return conf


class NetworkInvoker:
    """Runs ADD/DEL/CHECK/STATUS/GC of network lists through a `PluginExec`."""

    def __init__(self, plugin_exec: PluginExec, bin_dirs: Sequence[str], timeout_s: float) -> None:
        self.plugin_exec = plugin_exec
        self.bin_dirs = tuple(bin_dirs)
        self.timeout_s = timeout_s
        # plugin path -> versions it reported to VERSION (cached for crib's lifetime,
        # keyed by path + mtime so an upgraded binary is asked again)
        self._versions: dict[tuple[str, int], tuple[str, ...]] = {}

    def plugin_path(self, plugin_type: str) -> str:
        """The binary of `plugin_type`; `CniNotReadyError` naming the bin dirs if none."""
        path = find_plugin(plugin_type, self.bin_dirs)
        if path is None:
            raise CniNotReadyError(
                f"cni plugin {plugin_type!r} not found in {':'.join(self.bin_dirs)}"
            )
        return path

    def _env(self, command: str, rt: RuntimeConf | None) -> dict[str, str]:
        env = {"CNI_COMMAND": command, "CNI_PATH": ":".join(self.bin_dirs)}
        if rt is not None:
            env.update(
                CNI_CONTAINERID=rt.container_id,
                CNI_NETNS=rt.netns,
                CNI_IFNAME=rt.ifname,
                CNI_ARGS=rt.cni_args(),
            )
        return env

    async def _run(
        self,
        network: NetworkConfig,
        plugin: Mapping[str, Any],
        command: str,
        rt: RuntimeConf | None,
        conf: Mapping[str, Any],
    ) -> bytes:
        plugin_type = str(plugin["type"])
        path = self.plugin_path(plugin_type)
        try:
            return await self.plugin_exec.exec_plugin(
                path,
                json.dumps(conf).encode(),
                self._env(command, rt),
                self.timeout_s,
            )
        except CniPluginError as err:
            if not err.network:
                err.network = network.name
                err.args = (f"{err.args[0]} (network {network.name!r})",)
            raise

    async def add(self, network: NetworkConfig, rt: RuntimeConf) -> Result:
        """ADD every plugin in order; returns the final result."""
        prev: dict[str, Any] | None = None
        for plugin in network.plugins:
            conf = plugin_config(network, plugin, rt.capability_args, prev)
            out = await self._run(network, plugin, ADD, rt, conf)
            try:
                doc = json.loads(out)
            except ValueError as err:
                raise CniResultError(
                    f"cni plugin {plugin['type']} ADD (network {network.name!r}) printed no"
                    f" JSON result: {err}"
                ) from None
            prev = doc
        if prev is None:  # pragma: no cover - parse() refuses lists without plugins
            raise CniResultError(f"network {network.name!r} has no plugins")
        return parse_result(prev)

    async def delete(
        self, network: NetworkConfig, rt: RuntimeConf, cached: Mapping[str, Any] | None
    ) -> None:
        """DEL every plugin in reverse order. Plugins treat DEL as best effort and
        idempotent; crib reports the first failure after trying every plugin."""
        prev = cached if cached is not None and at_least(network.cni_version, "0.4.0") else None
        first_error: BaseException | None = None
        for plugin in reversed(network.plugins):
            conf = plugin_config(network, plugin, rt.capability_args, prev)
            try:
                await self._run(network, plugin, DEL, rt, conf)
            except CniPluginError as err:
                log.warning("%s", err)
                first_error = first_error or err
        if first_error is not None:
            raise first_error

    async def check(
        self, network: NetworkConfig, rt: RuntimeConf, cached: Mapping[str, Any]
    ) -> bool:
        """CHECK every plugin in order; False when the list does not support CHECK."""
        if not at_least(network.cni_version, "0.4.0") or network.disable_check:
            return False
        for plugin in network.plugins:
            conf = plugin_config(network, plugin, rt.capability_args, cached)
            await self._run(network, plugin, CHECK, rt, conf)
        return True

    async def versions(self, plugin_type: str) -> tuple[str, ...]:
        """The spec versions a plugin binary speaks (VERSION), cached per binary."""
        path = self.plugin_path(plugin_type)
        key = (path, os.stat(path).st_mtime_ns)
        if key not in self._versions:
            out = await self.plugin_exec.exec_plugin(
                path,
                json.dumps({"cniVersion": "0.4.0"}).encode(),
                {"CNI_COMMAND": VERSION, "CNI_PATH": ":".join(self.bin_dirs)},
                self.timeout_s,
            )
            try:
                doc = json.loads(out)
                found = tuple(str(v) for v in doc.get("supportedVersions", []))
            except (ValueError, AttributeError, TypeError):
                found = ()
            self._versions[key] = found
        return self._versions[key]

    async def _plugins_with_1_1(self, network: NetworkConfig) -> list[Mapping[str, Any]]:
        if not at_least(network.cni_version, "1.1.0"):
            return []
        chosen: list[Mapping[str, Any]] = []
        for plugin in network.plugins:
            if "1.1.0" in await self.versions(str(plugin["type"])):
                chosen.append(plugin)
        return chosen

    async def status(self, network: NetworkConfig) -> None:
        """STATUS every plugin that offers spec 1.1.0; raises the first plugin's error."""
        for plugin in await self._plugins_with_1_1(network):
            conf = plugin_config(network, plugin, {}, None)
            await self._run(network, plugin, STATUS, None, conf)

    async def gc(self, network: NetworkConfig, valid: Sequence[tuple[str, str]]) -> None:
        """GC every plugin that offers spec 1.1.0, naming the attachments still in use."""
        if network.disable_gc:
            return
        attachments = [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]
        for plugin in await self._plugins_with_1_1(network):
            conf = plugin_config(network, plugin, {}, None)
            conf["cni.dev/valid-attachments"] = attachments
            # libcni also sends the key the spec once misnamed (containernetworking/cni#1101).
            conf["cni.dev/attachments"] = attachments
            await self._run(network, plugin, GC, None, conf)
