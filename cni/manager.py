"""Pod networking: which network, attaching a pod to it, detaching it, readiness and GC.

One `CniManager` per daemon. It chooses the network the way ocicni/go-cni do (the first
valid file of the conf dir, re-read whenever the dir changes; crib's embedded default
network when the dir holds none), brings up the pod's `lo` with the loopback plugin, and
runs the network list for `eth0` with CRI-O's CNI_ARGS and the pod's capability arguments.

    setup(pod)      loopback ADD (lo) ─► cache entry (no result) ─► list ADD ─► cache entry
                    (with result) ─► Attachment, stored by the caller in the sandbox record
    teardown(...)   list DEL with the cached config and result (reverse order); works after
                    a config change, a restart, or with the netns gone (CNI_NETNS="")
    gc(live)        DEL every cached attachment whose sandbox is gone, then spec-1.1.0 GC

The caller serialises operations per sandbox and runs gc() before serving requests, so
GC never overlaps an ADD or DEL (SPEC.md "Lifecycle & Ordering").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from cni import config as cniconfig
from cni.cache import Attachment, AttachmentCache
from cni.config import NetworkConfig
from cni.errors import CniError, CniNotReadyError
from cni.invoke import PluginExec
from cni.network import NetworkInvoker, RuntimeConf
from cni.result import Result, parse_result

log = logging.getLogger("crib.cni")

POD_IFNAME = "eth0"
LOOPBACK_IFNAME = "lo"
NOT_READY_REASON = "NetworkPluginNotReady"


@dataclasses.dataclass(frozen=True)
class PortMapping:
    """A hostPort (CONVENTIONS.md `portMappings` entry)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"  # tcp, udp or sctp (lowercase, as portmap expects)
    host_ip: str = ""

    def to_cni(self) -> dict[str, Any]:
        """The capability argument entry."""
        entry: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            entry["hostIP"] = self.host_ip
        return entry


@dataclasses.dataclass(frozen=True)
class Bandwidth:
    """Traffic shaping (CONVENTIONS.md `bandwidth`): rates in bit/s, bursts in bits."""

    ingress_rate_bps: int = 0
    egress_rate_bps: int = 0
    # CRI-O passes a 4 GB burst (math.MaxUint32*8-1 bits), leaving shaping to the rate.
    burst_bits: int = (1 << 32) * 8 - 1

    def to_cni(self) -> dict[str, int]:
        """The capability argument (only the directions that are limited)."""
        out: dict[str, int] = {}
        if self.ingress_rate_bps > 0:
            out.update(ingressRate=self.ingress_rate_bps, ingressBurst=self.burst_bits)
        if self.egress_rate_bps > 0:
            out.update(egressRate=self.egress_rate_bps, egressBurst=self.burst_bits)
        return out


@dataclasses.dataclass(frozen=True)
class PodNetwork:
    """What the runtime knows about a pod when it attaches it."""

    sandbox_id: str
    pod_name: str
    pod_namespace: str
    pod_uid: str
    netns: str
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    cgroup_path: str = ""
    pod_annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ifname: str = POD_IFNAME

    def cni_args(self) -> tuple[tuple[str, str], ...]:
        """CRI-O's CNI_ARGS (ocicni buildCNIRuntimeConf)."""
        return (
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.pod_namespace),
            ("K8S_POD_NAME", self.pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.sandbox_id),
            ("K8S_POD_UID", self.pod_uid),
        )

    def capability_args(self) -> dict[str, Any]:
        """The capability arguments; each reaches only plugins that declare it."""
        caps: dict[str, Any] = {
            "portMappings": [m.to_cni() for m in self.port_mappings if m.host_port > 0],
        }
        if self.bandwidth is not None and self.bandwidth.to_cni():
            caps["bandwidth"] = self.bandwidth.to_cni()
        if self.cgroup_path:
            caps["cgroupPath"] = self.cgroup_path
        caps["io.kubernetes.cri.pod-annotations"] = dict(self.pod_annotations)
        return caps


@dataclasses.dataclass(frozen=True)
class NetworkChoice:
    """The network in use and why earlier files were skipped."""

    network: NetworkConfig
    from_conf_dir: bool
    skipped: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Readiness:
    """NetworkReady as Status reports it."""

    ready: bool
    reason: str = ""
    message: str = ""


class CniManager:
    """The daemon's CNI state: network choice, attachment cache and plugin invoker."""

    def __init__(
        self,
        conf_dir: str,
        bin_dirs: Sequence[str],
        default_network: NetworkConfig,
        cache_dir: str,
        plugin_exec: PluginExec,
        plugin_timeout_s: float,
    ) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = tuple(bin_dirs)
        self.default_network = default_network
        self.cache = AttachmentCache(cache_dir)
        self.invoker = NetworkInvoker(plugin_exec, self.bin_dirs, plugin_timeout_s)
        self.loopback = cniconfig.loopback_network()
        self._signature: tuple[Any, ...] | None = None
        self._choice: NetworkChoice | None = None
        # Called with (operation "ADD" | "DEL", seconds, succeeded) after each pod
        # attach/detach: the metrics endpoint's CNI latency.
        self.observers: list[Callable[[str, float, bool], None]] = []

    def _observe(self, operation: str, started_s: float, ok: bool) -> None:
        elapsed_s = time.monotonic() - started_s
        for observe in self.observers:
            observe(operation, elapsed_s, ok)

    # -- which network --------------------------------------------------------------------

    def _conf_dir_signature(self) -> tuple[Any, ...]:
        entries = []
        for path in cniconfig.list_conf_files(self.conf_dir):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            entries.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(entries)

    def network(self) -> NetworkChoice:
        """The network new pods join; the conf dir is re-read when any file in it changed.

        crib's default network is used only when the conf dir holds no configuration file
        at all: files that are all unusable are the operator's broken network, and pods
        must not silently land on another one (`CniNotReadyError` naming each file).
        """
        signature = self._conf_dir_signature()
        if self._choice is None or signature != self._signature:
            found = cniconfig.discover(self.conf_dir)
            if found.network is not None:
                choice = NetworkChoice(found.network, True, found.skipped)
            elif found.skipped:
                raise CniNotReadyError(
                    f"no usable network configuration in {self.conf_dir}:"
                    f" {'; '.join(found.skipped)}"
                )
            else:
                choice = NetworkChoice(self.default_network, False)
            if self._choice is None or choice.network != self._choice.network:
                log.info(
                    "cni network %r from %s%s",
                    choice.network.name,
                    choice.network.source,
                    f" (skipped: {'; '.join(choice.skipped)})" if choice.skipped else "",
                )
            self._choice, self._signature = choice, signature
        return self._choice

    def readiness(self) -> Readiness:
        """Ready when the chosen network's plugins (and IPAM, and loopback) all exist."""
        try:
            network = self.network().network
        except CniNotReadyError as err:
            return Readiness(False, NOT_READY_REASON, str(err))
        missing = cniconfig.missing_plugins(network, self.bin_dirs)
        if missing:
            return Readiness(
                False,
                NOT_READY_REASON,
                f"network {network.name!r} from {network.source}: CNI plugin binaries"
                f" {', '.join(missing)} not found in {':'.join(self.bin_dirs)}",
            )
        return Readiness(True)

    async def status(self) -> Readiness:
        """`readiness()`, plus the plugins' own STATUS for spec 1.1.0 networks."""
        ready = self.readiness()
        if not ready.ready:
            return ready
        network = self.network().network
        try:
            await self.invoker.status(network)
        except CniError as err:
            return Readiness(False, NOT_READY_REASON, f"network {network.name!r}: {err}")
        return ready

    # -- attach / detach ------------------------------------------------------------------

    async def setup(self, pod: PodNetwork) -> Attachment:
        """Attach a pod: `lo`, then the network list on `eth0`. Returns the attachment.

        On failure the caller runs `teardown` (SPEC: a DEL follows every ADD, even a failed
        one); the cache entry written before the ADD makes that DEL possible.
        """
        started_s = time.monotonic()
        ok = False
        try:
            attachment = await self._setup(pod)
            ok = True
            return attachment
        finally:
            self._observe("ADD", started_s, ok)

    async def _setup(self, pod: PodNetwork) -> Attachment:
        network = self.network().network
        missing = cniconfig.missing_plugins(network, self.bin_dirs)
        if missing:
            raise CniNotReadyError(
                f"network {network.name!r}: CNI plugin binaries {', '.join(missing)} not found"
                f" in {':'.join(self.bin_dirs)}"
            )
        await self.invoker.add(
            self.loopback,
            RuntimeConf(pod.sandbox_id, pod.netns, LOOPBACK_IFNAME, pod.cni_args()),
        )
        attachment = Attachment(
            network=network,
            container_id=pod.sandbox_id,
            ifname=pod.ifname,
            netns=pod.netns,
            cni_args=pod.cni_args(),
            capability_args=pod.capability_args(),
        )
        self.cache.save(attachment)
        result = await self.invoker.add(network, self._runtime_conf(attachment, pod.netns))
        attachment = dataclasses.replace(attachment, result=result.raw)
        self.cache.save(attachment)
        return attachment

    @staticmethod
    def _runtime_conf(attachment: Attachment, netns: str) -> RuntimeConf:
        return RuntimeConf(
            container_id=attachment.container_id,
            netns=netns,
            ifname=attachment.ifname,
            args=attachment.cni_args,
            capability_args=attachment.capability_args,
        )

    def attachments_of(self, sandbox_id: str, known: Attachment | None = None) -> list[Attachment]:
        """The attachments of a sandbox: the one its record holds plus any cache entry."""
        found: dict[tuple[str, str], Attachment] = {}
        for entry in self.cache.for_container(sandbox_id):
            found[(entry.network.name, entry.ifname)] = entry
        if known is not None:
            found[(known.network.name, known.ifname)] = known
        return list(found.values())

    async def teardown(self, sandbox_id: str, known: Attachment | None, netns: str) -> None:
        """Detach a pod from every network it may be on. `netns` is "" when the pinned
        netns is gone (after a reboot): DEL still runs so IPAM gives the address back
        (user-asks #1, #3). Raises the first DEL failure after trying all."""
        started_s = time.monotonic()
        ok = False
        try:
            await self._teardown(sandbox_id, known, netns)
            ok = True
        finally:
            self._observe("DEL", started_s, ok)

    async def _teardown(self, sandbox_id: str, known: Attachment | None, netns: str) -> None:
        first_error: CniError | None = None
        for attachment in self.attachments_of(sandbox_id, known):
            try:
                await self.invoker.delete(
                    attachment.network,
                    self._runtime_conf(attachment, netns),
                    attachment.result,
                )
            except CniError as err:
                first_error = first_error or err
                continue
            self.cache.remove(attachment)
        if netns:
            # lo disappears with the netns; DEL only to let the plugin see it (ocicni does).
            try:
                await self.invoker.delete(
                    self.loopback, RuntimeConf(sandbox_id, netns, LOOPBACK_IFNAME), None
                )
            except CniError as err:
                log.debug("loopback DEL for %s: %s", sandbox_id, err)
        if first_error is not None:
            raise first_error

    async def check(self, attachment: Attachment, netns: str) -> bool:
        """CHECK an attachment against its cached result; False if the network cannot CHECK."""
        if attachment.result is None:
            return False
        return await self.invoker.check(
            attachment.network, self._runtime_conf(attachment, netns), attachment.result
        )

    async def gc(self, live_sandbox_ids: Collection[str]) -> list[Attachment]:
        """Release what crib holds for sandboxes that no longer exist: DEL each cached
        attachment whose sandbox is not live, then GC (spec 1.1.0) on the current network
        with the live attachments. Returns the attachments deleted."""
        released = []
        for attachment in self.cache.entries():
            if attachment.container_id in live_sandbox_ids:
                continue
            netns = (
                attachment.netns if attachment.netns and os.path.exists(attachment.netns) else ""
            )
            try:
                await self.invoker.delete(
                    attachment.network, self._runtime_conf(attachment, netns), attachment.result
                )
            except CniError as err:
                log.warning("cni gc of %s: %s", attachment.container_id, err)
                continue
            self.cache.remove(attachment)
            released.append(attachment)
            log.info(
                "cni gc: released %s on network %r (no such sandbox)",
                attachment.container_id,
                attachment.network.name,
            )
        try:
            network = self.network().network
            await self.invoker.gc(network, [(sid, POD_IFNAME) for sid in sorted(live_sandbox_ids)])
        except CniError as err:
            log.warning("cni gc: %s", err)
        return released


def attachment_result(attachment: Attachment | None) -> Result | None:
    """The parsed ADD result of an attachment, if it has one."""
    if attachment is None or attachment.result is None:
        return None
    return parse_result(attachment.result)
