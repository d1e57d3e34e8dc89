"""Reads the kernel for container and pod stats and metrics (see the package doc).

Where each figure comes from:

    container     its cgroup leaf (linux.cgroupsPath): cpu, memory, swap, pids, PSI, I/O
                  + the writable layer's cached size (disk.py)
                  + for metrics: /proc of its processes (fds, sockets, threads, ulimit)
    pod           kubelet's pod cgroup (cgroup_parent) when it is the pod's alone: it
                  holds the pause, every container, and what exited containers used;
                  else (crictl pods share crib's default parent) the sum of the pause's
                  and the live containers' leaves
    pod network   /proc/<pid>/net/dev of the pause (or a running container) checked to be
                  in the pinned network namespace (network.py); none for host-network pods

All reads are blocking file reads: a batch runs in one worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence

from cri.api import api_pb2 as pb
from cri.containers import resources as res
from cri.containers.records import LIVE_STATES, ContainerMetadata, ContainerState, ContainerStatus
from cri.containers.translate import cri_metadata as container_cri_metadata
from cri.pods.records import SandboxMetadata, SandboxState, SandboxStatus
from cri.pods.translate import cri_metadata as sandbox_cri_metadata
from cri.stats import metrics as m
from cri.stats import translate as tr
from cri.stats.disk import LayerUsageCache, filesystem_facts
from cri.stats.network import InterfaceCounters, read_pod_interfaces
from cri.stats.procs import ProcessFacts, process_facts, soft_open_files_limit
from cri.stats.rates import CpuRates
from cri.store import Record, RecordStore
from image.errors import ImageError
from image.service import ImageService
from sandbox.linux.cgroups import CGROUP_ROOT, CgroupError, is_unified, open_manager
from sandbox.linux.cgroups.types import CgroupManager, CgroupStats

log = logging.getLogger("crib.stats")

ContainerRecord = Record[ContainerMetadata, ContainerStatus]
SandboxRecord = Record[SandboxMetadata, SandboxStatus]


class StatsCollector:
    """Container and pod stats and metrics, from cgroups and /proc."""

    def __init__(
        self,
        containers: RecordStore[ContainerMetadata, ContainerStatus],
        sandboxes: RecordStore[SandboxMetadata, SandboxStatus],
        images: ImageService,
        *,
        cgroup_root: str = CGROUP_ROOT,
        proc_root: str = "/proc",
    ) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.images = images
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        self.rates = CpuRates()
        self.layers = LayerUsageCache()
        self._managers: dict[str, CgroupManager] = {}
        self._device_names: dict[tuple[int, int], str] = {}
        unified = is_unified(cgroup_root)
        # PSI per cgroup exists on v2 only, and only when the kernel accounts it.
        self.pressure = unified and os.path.exists(os.path.join(proc_root, "pressure", "cpu"))
        if unified:
            try:
                with open(os.path.join(cgroup_root, "cgroup.controllers")) as f:
                    self.hugetlb = "hugetlb" in f.read().split()
            except OSError:
                self.hugetlb = False
        else:
            self.hugetlb = os.path.isdir(os.path.join(cgroup_root, "hugetlb"))
        self.descriptors = m.enabled_descriptors(self.hugetlb, self.pressure)
        self.enabled = frozenset(d.name for d in self.descriptors)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start measuring writable layers in the background."""
        self.layers.start()

    def stop(self) -> None:
        """Stop the background measurements."""
        self.layers.stop()

    def on_container_event(self, container_id: str, event: str) -> None:
        """ContainerManager listener: measure new layers early, forget removed ones."""
        if event == "created":
            self._request_layer(container_id, force=True)
        elif event == "deleted":
            self.forget(container_id)

    def on_sandbox_event(self, record: SandboxRecord, event: str) -> None:
        """PodManager listener: forget removed sandboxes."""
        if event == "deleted":
            self.forget(record.record_id)

    def forget(self, object_id: str) -> None:
        """Drop what is kept about a removed container or sandbox."""
        self.rates.forget(object_id)
        self.layers.forget(object_id)
        # list() copies the keys in one step: stats threads may add managers meanwhile.
        for path in list(self._managers):
            if path.endswith(object_id):
                self._managers.pop(path, None)

    # -- reading -----------------------------------------------------------------------------

    def _cgroup_stats(self, cgroups_path: str) -> CgroupStats | None:
        """A cgroup's stats, None when it does not exist (exited, or not created yet)."""
        manager = self._managers.get(cgroups_path)
        if manager is None:
            try:
                manager = open_manager(cgroups_path, root=self.cgroup_root)
            except CgroupError as err:
                log.warning("stats: cgroup %s: %s", cgroups_path, err)
                return None
            self._managers[cgroups_path] = manager
        if not manager.exists():
            self._managers.pop(cgroups_path, None)
            return None
        return manager.stats()

    def _pids(self, cgroups_path: str) -> list[int]:
        manager = self._managers.get(cgroups_path)
        return manager.pids() if manager is not None else []

    def _request_layer(self, container_id: str, force: bool = False) -> None:
        try:
            upper = self.images.rootfs_mount(container_id).upperdir
        except ImageError:
            return
        self.layers.request(container_id, upper, force=force)

    def _device_name(self, numbers: tuple[int, int]) -> str:
        """/dev/<name> of a block device (/sys/dev/block/MAJ:MIN links to its sysfs dir)."""
        name = self._device_names.get(numbers)
        if name is None:
            try:
                target = os.readlink(f"/sys/dev/block/{numbers[0]}:{numbers[1]}")
                name = "/dev/" + os.path.basename(target)
            except OSError:
                name = f"{numbers[0]}:{numbers[1]}"
            self._device_names[numbers] = name
        return name

    # -- containers -----------------------------------------------------------------------

    async def container_stats(self, records: Sequence[ContainerRecord]) -> list[pb.ContainerStats]:
        """ContainerStats of each record (in a worker thread)."""
        return await asyncio.to_thread(lambda: [self._container_stats(r) for r in records])

    def _container_stats(
        self, record: ContainerRecord, cgroup: CgroupStats | None = None
    ) -> pb.ContainerStats:
        meta = record.metadata
        result = pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=record.record_id,
                metadata=container_cri_metadata(meta),
                labels=meta.labels,
                annotations=meta.annotations,
            )
        )
        layer = self.layers.get(record.record_id)
        self._request_layer(record.record_id)
        if layer is not None:
            result.writable_layer.CopyFrom(
                tr.filesystem_usage(layer, self.images.snapshots.snapshots_dir)
            )
        if record.status.state not in LIVE_STATES:
            return result  # exited: its cgroup is gone with it
        now_ns = time.time_ns()
        if cgroup is None:
            cgroup = self._cgroup_stats(meta.cgroups_path)
        if cgroup is None:
            return result
        rate = self.rates.update(record.record_id, now_ns, cgroup["cpu_usage_ns"])
        result.cpu.CopyFrom(tr.cpu_usage(cgroup, now_ns, rate))
        result.memory.CopyFrom(tr.memory_usage(cgroup, now_ns))
        result.swap.CopyFrom(tr.swap_usage(cgroup, now_ns))
        io = tr.io_usage(cgroup, now_ns)
        if io is not None:
            result.io.CopyFrom(io)
        return result

    # -- pods --------------------------------------------------------------------------------

    def _live_containers(self, sandbox_id: str) -> list[ContainerRecord]:
        return sorted(
            (
                r
                for r in self.containers.list()
                if r.metadata.sandbox_id == sandbox_id and r.status.state in LIVE_STATES
            ),
            key=lambda r: r.metadata.created_at_ns,
        )

    def _owns_parent(self, sandbox: SandboxRecord, ready: Sequence[SandboxRecord]) -> bool:
        """Whether the sandbox's cgroup_parent is its alone (kubelet's pod<uid> cgroup)."""
        parent = sandbox.metadata.cgroup_parent
        if not parent or parent.strip("/") == "":
            return False
        return sum(1 for s in ready if s.metadata.cgroup_parent == parent) == 1

    async def sandbox_stats(self, records: Sequence[SandboxRecord]) -> list[pb.PodSandboxStats]:
        """PodSandboxStats of each record (in a worker thread)."""

        def collect() -> list[pb.PodSandboxStats]:
            ready = [s for s in self.sandboxes.list() if s.status.state is SandboxState.READY]
            return [self._sandbox_stats(r, ready) for r in records]

        return await asyncio.to_thread(collect)

    def _sandbox_stats(
        self, record: SandboxRecord, ready: Sequence[SandboxRecord]
    ) -> pb.PodSandboxStats:
        meta, status = record.metadata, record.status
        result = pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(
                id=record.record_id,
                metadata=sandbox_cri_metadata(meta),
                labels=meta.labels,
                annotations=meta.annotations,
            )
        )
        if status.state is not SandboxState.READY:
            return result
        containers = self._live_containers(record.record_id)
        leaves = {c.record_id: self._cgroup_stats(c.metadata.cgroups_path) for c in containers}
        now_ns = time.time_ns()
        pod: CgroupStats | None = None
        if self._owns_parent(record, ready):
            pod = self._cgroup_stats(meta.cgroup_parent)
        if pod is None:
            parts = [self._cgroup_stats(meta.cgroups_path), *leaves.values()]
            found = [p for p in parts if p is not None]
            pod = tr.summed(found) if found else None
        linux = result.linux
        if pod is not None:
            rate = self.rates.update(record.record_id, now_ns, pod["cpu_usage_ns"])
            linux.cpu.CopyFrom(tr.cpu_usage(pod, now_ns, rate))
            linux.memory.CopyFrom(tr.memory_usage(pod, now_ns))
            linux.process.CopyFrom(tr.process_usage(pod["pids_current"], now_ns))
            io = tr.io_usage(pod, now_ns)
            if io is not None:
                linux.io.CopyFrom(io)
        interfaces = self._interfaces(record, containers)
        if interfaces is not None:
            linux.network.CopyFrom(tr.network_usage(interfaces, now_ns))
        linux.containers.extend(self._container_stats(c, leaves[c.record_id]) for c in containers)
        return result

    def _interfaces(
        self, record: SandboxRecord, containers: Sequence[ContainerRecord]
    ) -> list[InterfaceCounters] | None:
        """The pod's interfaces, seen through a process in its pinned network namespace."""
        status = record.status
        pin = status.namespace_paths.get("net", "")
        if record.metadata.namespaces.host_network or not pin:
            return None
        pids = []
        if status.pause is not None:
            pids.append(status.pause.pid)
        pids.extend(
            c.status.init.pid
            for c in containers
            if c.status.init is not None and c.status.state is ContainerState.RUNNING
        )
        return read_pod_interfaces(pids, pin, self.proc_root)

    # -- metrics -------------------------------------------------------------------------------

    async def sandbox_metrics(self, records: Sequence[SandboxRecord]) -> list[pb.PodSandboxMetrics]:
        """PodSandboxMetrics of each ready sandbox (in a worker thread)."""

        def collect() -> list[pb.PodSandboxMetrics]:
            fs = filesystem_facts(self.images.snapshots.snapshots_dir)
            return [
                self._sandbox_metrics(r, fs)
                for r in records
                if r.status.state is SandboxState.READY
            ]

        return await asyncio.to_thread(collect)

    def _sandbox_metrics(
        self, record: SandboxRecord, fs: tuple[int, int, int] | None
    ) -> pb.PodSandboxMetrics:
        meta = record.metadata
        result = pb.PodSandboxMetrics(pod_sandbox_id=record.record_id)
        containers = self._live_containers(record.record_id)
        interfaces = self._interfaces(record, containers)
        if interfaces:
            result.metrics.extend(
                m.network_metrics(
                    record.record_id, meta.namespace, meta.name, interfaces, self.enabled
                )
            )
        for container in containers:
            cgroup = self._cgroup_stats(container.metadata.cgroups_path)
            if cgroup is None:
                continue
            sample = self._sample(record, container, cgroup, fs)
            result.container_metrics.append(
                pb.ContainerMetrics(
                    container_id=container.record_id,
                    metrics=m.container_metrics(sample, self.enabled),
                )
            )
        return result

    def _sample(
        self,
        sandbox: SandboxRecord,
        container: ContainerRecord,
        cgroup: CgroupStats,
        fs: tuple[int, int, int] | None,
    ) -> m.ContainerSample:
        meta, status = container.metadata, container.status
        pids = self._pids(meta.cgroups_path)
        init = status.init
        self._request_layer(container.record_id)
        return m.ContainerSample(
            container_id=container.record_id,
            image=meta.image_name,
            namespace=sandbox.metadata.namespace,
            pod=sandbox.metadata.name,
            name=meta.name,
            cgroup=cgroup,
            processes=process_facts(pids, self.proc_root) if pids else ProcessFacts(),
            open_files_soft_limit=(
                soft_open_files_limit(init.pid, self.proc_root) if init is not None else None
            ),
            layer=self.layers.get(container.record_id),
            filesystem=fs,
            resources=res.from_json(status.resources),
            created_at_ns=meta.created_at_ns,
            device_names={
                (io["major"], io["minor"]): self._device_name((io["major"], io["minor"]))
                for io in cgroup["io"]
            },
        )
