"""The attachment cache: what DEL, CHECK and GC need, kept after ADD (libcni's result cache).

One file per attachment, `<dir>/<network>-<container_id>-<ifname>` (mode 0600, dir 0700),
in libcni's `cniCacheV1` shape. crib writes it BEFORE the ADD (without a result) and again
after it (with the result), so an ADD cut short by a crash still leaves what a DEL needs:
host-local IPAM keeps its leases on disk across reboots, and an IP is only given back by
a DEL (containerd/cri#948, user-asks #1). The entry is removed after a successful DEL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
from typing import Any

from cni.config import NetworkConfig
from cni.errors import CniConfigError
from common import atomicfile

log = logging.getLogger("crib.cni")

CACHE_KIND = "cniCacheV1"


@dataclasses.dataclass(frozen=True)
class Attachment:
    """One pod interface on one network: everything DEL needs, even after a config change."""

    network: NetworkConfig
    container_id: str
    ifname: str
    netns: str
    cni_args: tuple[tuple[str, str], ...]
    capability_args: dict[str, Any]
    # The ADD result as the last plugin printed it; None while the ADD has not finished.
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """libcni's cache document (the config as base64 bytes), plus crib's source note."""
        config_bytes = json.dumps(self.network.raw, sort_keys=True).encode()
        doc: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "config": base64.b64encode(config_bytes).decode(),
            "ifName": self.ifname,
            "networkName": self.network.name,
            "netns": self.netns,
            "cniArgs": [list(pair) for pair in self.cni_args],
            "capabilityArgs": self.capability_args,
            "crib.source": self.network.source,
            "crib.singlePlugin": "plugins" not in self.network.raw,
        }
        if self.result is not None:
            doc["result"] = self.result
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Attachment:
        """Read a cache document; `CniConfigError` if it is not one."""
        if doc.get("kind") != CACHE_KIND:
            raise CniConfigError(f"cni cache entry of kind {doc.get('kind')!r}")
        try:
            raw = json.loads(base64.b64decode(doc["config"]))
            network = NetworkConfig.from_json(
                {
                    "raw": raw,
                    "source": doc.get("crib.source", "<cache>"),
                    "single_plugin": doc.get("crib.singlePlugin", False),
                }
            )
            result = doc.get("result")
            return cls(
                network=network,
                container_id=str(doc["containerId"]),
                ifname=str(doc["ifName"]),
                netns=str(doc.get("netns", "")),
                cni_args=tuple((str(k), str(v)) for k, v in doc.get("cniArgs", [])),
                capability_args=dict(doc.get("capabilityArgs") or {}),
                result=result if isinstance(result, dict) else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CniConfigError(f"cni cache entry is unreadable: {err!r}") from None


class AttachmentCache:
    """The cache directory."""

    def __init__(self, dir_path: str) -> None:
        self.dir_path = dir_path

    def path(self, network_name: str, container_id: str, ifname: str) -> str:
        """Where the entry of one attachment lives."""
        return os.path.join(self.dir_path, f"{network_name}-{container_id}-{ifname}")

    def save(self, attachment: Attachment) -> None:
        """Write (or replace) an entry durably."""
        os.makedirs(self.dir_path, mode=0o700, exist_ok=True)
        atomicfile.write_json(
            self.path(attachment.network.name, attachment.container_id, attachment.ifname),
            attachment.to_json(),
            mode=0o600,
        )

    def remove(self, attachment: Attachment) -> None:
        """Drop an entry (nothing happens if it is gone)."""
        path = self.path(attachment.network.name, attachment.container_id, attachment.ifname)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def entries(self) -> list[Attachment]:
        """Every readable entry; unreadable ones are logged and removed, as libcni does."""
        found = []
        try:
            names = sorted(os.listdir(self.dir_path))
        except FileNotFoundError:
            return []
        for name in names:
            if atomicfile.is_tmp_name(name):
                continue
            full = os.path.join(self.dir_path, name)
            try:
                with open(full, "rb") as f:
                    found.append(Attachment.from_json(json.loads(f.read())))
            except (OSError, ValueError, CniConfigError) as err:
                log.warning("dropping unreadable cni cache entry %s: %s", full, err)
                try:
                    os.unlink(full)
                except OSError:
                    pass
        return found

    def for_container(self, container_id: str) -> list[Attachment]:
        """The entries of one container (sandbox)."""
        return [a for a in self.entries() if a.container_id == container_id]
