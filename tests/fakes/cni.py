"""A recording fake of `cni.invoke.PluginExec`: plugins answer from a script, calls are kept."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from cni.errors import plugin_error


@dataclasses.dataclass
class PluginCall:
    """One recorded plugin execution."""

    plugin: str  # the binary's base name (the plugin type)
    command: str  # CNI_COMMAND
    env: dict[str, str]
    conf: dict[str, Any]  # what the plugin read on stdin


Responder = Callable[[PluginCall], dict[str, Any] | None]


def bridge_like_result(call: PluginCall, address: str = "10.123.0.2/24") -> dict[str, Any]:
    """A 1.0.0-style result with a host bridge, a veth and eth0 in the sandbox."""
    return {
        "cniVersion": call.conf.get("cniVersion", "1.0.0"),
        "interfaces": [
            {"name": "cpod0", "mac": "aa:aa:aa:aa:aa:01"},
            {"name": "veth1", "mac": "aa:aa:aa:aa:aa:02"},
            {"name": "eth0", "mac": "aa:aa:aa:aa:aa:03", "sandbox": call.env.get("CNI_NETNS", "")},
        ],
        "ips": [{"address": address, "gateway": address.split("/")[0][:-1] + "1", "interface": 2}],
    }


class FakePluginExec:
    """Answers ADD with a result (`responders[plugin]` may change it), passes prevResult
    through for chained plugins, and fails when told to: `fail[(plugin, command)] = code`."""

    def __init__(self) -> None:
        self.calls: list[PluginCall] = []
        self.responders: dict[str, Responder] = {}
        self.fail: dict[tuple[str, str], tuple[int, str, str]] = {}
        self.versions: dict[str, list[str]] = {}

    def commands(self, plugin: str | None = None) -> list[tuple[str, str]]:
        """(plugin, command) of every call, in order (optionally of one plugin only)."""
        return [(c.plugin, c.command) for c in self.calls if plugin in (None, c.plugin)]

    async def exec_plugin(
        self,
        plugin_path: str,
        stdin_data: bytes,
        env: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        plugin = os.path.basename(plugin_path)
        call = PluginCall(plugin, env["CNI_COMMAND"], dict(env), json.loads(stdin_data))
        self.calls.append(call)
        failure = self.fail.get((plugin, call.command))
        if failure is not None:
            code, msg, details = failure
            raise plugin_error(plugin, call.command, code, msg, details)
        if call.command == "VERSION":
            versions = self.versions.get(plugin, ["0.3.1", "0.4.0", "1.0.0"])
            return json.dumps({"cniVersion": "1.0.0", "supportedVersions": versions}).encode()
        if call.command != "ADD":
            return b""
        responder = self.responders.get(plugin)
        if responder is not None:
            result = responder(call)
        elif "prevResult" in call.conf:
            result = call.conf["prevResult"]
        elif plugin == "loopback":
            result = {
                "cniVersion": call.conf["cniVersion"],
                "interfaces": [{"name": "lo", "sandbox": env.get("CNI_NETNS", "")}],
            }
        else:
            result = bridge_like_result(call)
        return json.dumps(result).encode()


def make_bin_dir(path: str, *plugins: str) -> str:
    """A directory of (never run) executables named like plugins, so discovery finds them."""
    os.makedirs(path, exist_ok=True)
    for plugin in plugins:
        full = os.path.join(path, plugin)
        with open(full, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(full, 0o755)
    return path
