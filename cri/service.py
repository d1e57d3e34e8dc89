"""The service object every RPC handler receives: configuration, stores and state.

Built once by `cri.server` (the composition root); handlers read and update it
under the per-id locks it provides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
import time
from typing import Any

import cni.config
from cni.invoke import SubprocessPluginExec
from cni.manager import CniManager
from common import atomicfile
from common.binaries import resolve
from common.errors import FailedPreconditionError, InvalidArgumentError
from cri import __version__
from cri.config import Config
from cri.containers.manager import ContainerManager, new_container_store
from cri.containers.streaming import ContainerStreamingRuntime
from cri.events import ContainerEvents
from cri.pods.manager import PodManager, new_sandbox_store
from cri.prometheus import RuntimeMetrics
from cri.specgen import HostFacts
from cri.specgen import host as specgen_host
from cri.stats.collector import StatsCollector
from cri.store import KeyedLock, Registrar
from cri.streaming import StreamingServer, UnwiredStreamingRuntime
from image.registry import RegistryHost
from image.service import ImageService, ImageServiceConfig
from sandbox.monitor.conmon import Conmon
from sandbox.oci.client import RuntimeClient
from sandbox.oci.errors import OciRuntimeMissingError
from sandbox.pod.pause import PauseRunner

log = logging.getLogger("crib.service")

RUNTIME_CONFIG_FILE = "runtime-config.json"
RUNTIME_CONFIG_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RuntimeState:
    """What kubelet told crib through UpdateRuntimeConfig (persisted across restarts)."""

    pod_cidr: str = ""


def image_service_config(config: Config) -> ImageServiceConfig:
    """The image service's settings from crib's configuration (images live in <root>/images)."""
    return ImageServiceConfig(
        root=os.path.join(config.root, "images"),
        registries={
            host: RegistryHost(mirrors=r.mirrors, upstream=r.upstream, insecure=r.insecure)
            for host, r in config.registries.items()
        },
        pinned_images=config.pinned_images,
        max_concurrent_downloads=config.max_concurrent_downloads,
        pull_progress_timeout_s=config.pull_progress_timeout_s,
        user_agent=f"crib/{__version__}",
    )


class CriService:
    """State shared by all RPC handlers of one daemon."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.locks = KeyedLock()
        self.runtime_state = RuntimeState()
        self.started_at_ns = time.time_ns()
        # Images: pulls, the image index, layers and container rootfs snapshots.
        self.images = ImageService(image_service_config(config))
        # Exec/Attach/PortForward: the handlers mint URLs here (get_exec_url...); the
        # sessions run on `streaming_runtime` (set below, once containers exist).
        self.streaming = StreamingServer(
            UnwiredStreamingRuntime(), config.streaming.address, config.streaming.port
        )

        # -- pod sandboxes: records, names, CNI, conmon, the lifecycle (cri/pods) --------------
        self.sandboxes = new_sandbox_store(config.root)
        self.sandbox_names = Registrar()
        net = config.cni.default_network
        self.cni = CniManager(
            conf_dir=config.cni.conf_dir,
            bin_dirs=config.cni.bin_dirs,
            default_network=cni.config.default_network(net.bridge, net.subnet),
            cache_dir=os.path.join(config.root, "cni", "results"),
            plugin_exec=SubprocessPluginExec(),
            plugin_timeout_s=config.cni.plugin_timeout_s,
        )
        # Short paths: conmon's attach socket is <socket dir>/<64-hex id>/attach (< 108 bytes).
        self.conmon = Conmon(
            resolve(config.conmon) or config.conmon,
            exit_dir=os.path.join(config.state, "exits"),
            socket_dir=os.path.join(config.state, "s"),
        )
        self.pods = PodManager(
            config,
            self.sandboxes,
            self.sandbox_names,
            self.locks,
            self.cni,
            PauseRunner(self.conmon),
            self.runtime_client,
        )
        self._runtime_clients: dict[str, RuntimeClient] = {}

        # -- containers: records, names, the lifecycle (cri/containers) -----------------------
        # What each runtime handler's `features` says it supports (probe_runtimes), and the
        # host facts spec generation reads, per handler (recursive read-only differs).
        self.handler_rro: dict[str, bool] = {}
        self._host_facts: dict[str, HostFacts] = {}
        self.containers = ContainerManager(
            config,
            new_container_store(config.root),
            Registrar(),
            self.locks,
            self.sandboxes,
            self.pods.resolve_id,
            self.images,
            self.conmon,
            self.runtime_client,
            self.host_facts,
        )
        self.pods.containers = self.containers
        # Exec/attach/port-forward sessions reach containers and pods through this.
        self.streaming_runtime = ContainerStreamingRuntime(
            self.containers,
            self.pods.require,
            self.runtime_client,
            console_dir=os.path.join(config.state, "console"),
        )
        self.streaming.runtime = self.streaming_runtime

        # -- observability: stats and CRI metrics, container events, Prometheus ---------------
        self.stats = StatsCollector(self.containers.store, self.sandboxes, self.images)
        self.events = ContainerEvents(self.containers.store, self.sandboxes)
        self.containers.listeners += [self.stats.on_container_event, self.events.on_container_event]
        self.pods.listeners += [self.stats.on_sandbox_event, self.events.on_sandbox_event]
        # Built only when the endpoint is on (metrics.address): nothing is counted otherwise.
        self.prometheus: RuntimeMetrics | None = None
        if config.metrics.address:
            self.prometheus = RuntimeMetrics()
            self.prometheus.watch(self)

    def runtime_client(self, handler: str) -> RuntimeClient:
        """The client of runtime handler `handler` (a key of `config.runtimes`)."""
        client = self._runtime_clients.get(handler)
        if client is None:
            if handler not in self.config.runtimes:
                raise OciRuntimeMissingError(
                    f"runtime handler {handler!r} is not configured (config key runtimes)"
                )
            path = resolve(self.config.runtimes[handler].path)
            if path is None:
                raise OciRuntimeMissingError(
                    f"runtime handler {handler!r}: {self.config.runtimes[handler].path} not"
                    f" found (config key runtimes.{handler}.path)"
                )
            client = RuntimeClient(path, self.config.runtime_root(handler))
            self._runtime_clients[handler] = client
        return client

    def host_facts(self, handler: str) -> HostFacts:
        """The host facts for containers of runtime handler `handler` (probed once)."""
        facts = self._host_facts.get(handler)
        if facts is None:
            facts = specgen_host.probe(runtime_supports_rro=self.handler_rro.get(handler, False))
            self._host_facts[handler] = facts
        return facts

    async def probe_runtimes(self) -> None:
        """Ask each runtime handler what it supports (`features`): recursive read-only
        mounts count only when its mountOptions list "rro" (runc >= 1.1 does; crun 1.8 has
        no `features` and so is not trusted with them)."""
        for handler in self.config.runtimes:
            try:
                client = self.runtime_client(handler)
            except OciRuntimeMissingError:
                self.handler_rro[handler] = False
                continue
            features = await client.features()
            options = (features or {}).get("mountOptions") or []
            self.handler_rro[handler] = isinstance(options, list) and "rro" in options
        self._host_facts.clear()

    # -- start-up ---------------------------------------------------------------------------

    def prepare_dirs(self) -> None:
        """Create the persistent and volatile roots (private to root)."""
        for path in (self.config.root, self.config.state):
            os.makedirs(path, mode=0o711, exist_ok=True)

    def load(self) -> None:
        """Load persisted state. Raises a `DomainError` naming the file when it is unreadable."""
        self.images.load()
        path = os.path.join(self.config.root, RUNTIME_CONFIG_FILE)
        atomicfile.sweep_tmp(self.config.root)
        try:
            with open(path, "rb") as f:
                doc: Any = json.loads(f.read())
        except FileNotFoundError:
            return
        except ValueError as err:
            raise FailedPreconditionError(f"{path}: not JSON: {err}") from None
        if not isinstance(doc, dict) or doc.get("version") != RUNTIME_CONFIG_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise FailedPreconditionError(
                f"{path}: unknown version {version!r} (this crib reads version"
                f" {RUNTIME_CONFIG_VERSION})"
            )
        self.runtime_state = RuntimeState(pod_cidr=str(doc.get("pod_cidr", "")))

    def load_records(self) -> None:
        """Load sandbox and container records (unknown versions stop start-up, naming the
        file)."""
        self.sandboxes.load()
        self.containers.store.load()

    async def recover(self) -> None:
        """Reconcile loaded records with the kernel (before serving): runtime features,
        then sandboxes (PodManager.recover), then their containers (ContainerManager.recover)."""
        await self.probe_runtimes()
        await self.pods.recover()
        await self.containers.recover()
        self.streaming_runtime.sweep()
        self.events.prime()

    async def close(self) -> None:
        """Stop background work (pods and containers keep running)."""
        self.events.close()
        await self.containers.close()
        await self.pods.close()
        await asyncio.to_thread(self.stats.stop)

    # -- runtime configuration ------------------------------------------------------------------

    def set_pod_cidr(self, pod_cidr: str) -> None:
        """Record the node's pod CIDR(s) (comma-separated for dual stack) durably."""
        for part in pod_cidr.split(","):
            try:
                ipaddress.ip_network(part.strip())
            except ValueError:
                raise InvalidArgumentError(
                    f"runtime_config.network_config.pod_cidr: bad CIDR {part.strip()!r}"
                ) from None
        new = dataclasses.replace(self.runtime_state, pod_cidr=pod_cidr)
        atomicfile.write_json(
            os.path.join(self.config.root, RUNTIME_CONFIG_FILE),
            {"version": RUNTIME_CONFIG_VERSION, "pod_cidr": new.pod_cidr},
        )
        if new != self.runtime_state:
            log.info("pod CIDR set to %s", pod_cidr)
        self.runtime_state = new
