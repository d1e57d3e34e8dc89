"""CRI metrics (ListMetricDescriptors / ListPodSandboxMetrics) under cAdvisor's names.

kubelet's /metrics/cadvisor serves these when its PodAndContainerStatsFromCRI gate is
on, so the names, label keys and meanings are the ones cAdvisor exported (and that
CRI-O's stats server and critest's expected list use). Every metric carries the base
labels

    id, image, namespace, pod, container

(container id for containers; sandbox id, "" and "POD" for the pod-level network
metrics), then its own (cpu, interface, device, ...). Values are unsigned integers on
the wire, so *_seconds_total metrics are whole seconds, as CRI-O sends them.
Timestamps: 0 for values read live (api.proto "Timestamp should be 0 if the metric was
gathered live"), the measurement time for the writable layer's cached size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from cri.api import api_pb2 as pb
from cri.stats.disk import LayerUsage
from cri.stats.network import InterfaceCounters
from cri.stats.procs import ProcessFacts
from sandbox.linux.cgroups.types import CgroupStats

BASE_LABELS = ("id", "image", "namespace", "pod", "container")
NS_PER_S = 1_000_000_000
US_PER_S = 1_000_000
COUNTER = pb.MetricType.COUNTER
GAUGE = pb.MetricType.GAUGE

# Groups: a descriptor is listed only when the host can give its values.
ALWAYS, HUGETLB, PRESSURE = "always", "hugetlb", "pressure"


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """One metric name with its help text and the label keys after the base ones."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    group: str = ALWAYS

    def to_pb(self) -> pb.MetricDescriptor:
        """The CRI MetricDescriptor."""
        return pb.MetricDescriptor(
            name=self.name, help=self.help, label_keys=[*BASE_LABELS, *self.labels]
        )


_DEVICE = ("device",)
_INTERFACE = ("interface",)

DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("container_last_seen", "Last time a container was seen by the exporter"),
    # cpu
    Descriptor("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds."),
    Descriptor(
        "container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds."
    ),
    Descriptor(
        "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", ("cpu",)
    ),
    Descriptor(
        "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals."
    ),
    Descriptor(
        "container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals."
    ),
    Descriptor(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
    ),
    # memory
    Descriptor("container_memory_cache", "Number of bytes of page cache memory."),
    Descriptor("container_memory_rss", "Size of RSS in bytes."),
    Descriptor("container_memory_kernel_usage", "Size of kernel memory allocated in bytes."),
    Descriptor("container_memory_mapped_file", "Size of memory mapped files in bytes."),
    Descriptor("container_memory_swap", "Container swap usage in bytes."),
    Descriptor("container_memory_failcnt", "Number of memory usage hits limits"),
    Descriptor(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
    ),
    Descriptor("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes"),
    Descriptor("container_memory_working_set_bytes", "Current working set in bytes."),
    Descriptor(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        ("failure_type", "scope"),
    ),
    # network (pod level)
    Descriptor(
        "container_network_receive_bytes_total", "Cumulative count of bytes received", _INTERFACE
    ),
    Descriptor(
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        _INTERFACE,
    ),
    Descriptor(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        _INTERFACE,
    ),
    # oom
    Descriptor(
        "container_oom_events_total", "Count of out of memory events observed for the container"
    ),
    # processes
    Descriptor("container_file_descriptors", "Number of open file descriptors for the container."),
    Descriptor("container_processes", "Number of processes running inside the container."),
    Descriptor("container_sockets", "Number of open sockets for the container."),
    Descriptor("container_threads", "Number of threads running inside the container"),
    Descriptor(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
    ),
    Descriptor(
        "container_ulimits_soft",
        "Soft ulimit values for the container root process. Unlimited if -1, except priority"
        " and nice",
        ("ulimit",),
    ),
    # spec
    Descriptor("container_spec_cpu_period", "CPU period of the container."),
    Descriptor("container_spec_cpu_shares", "CPU share of the container."),
    Descriptor("container_spec_cpu_quota", "CPU quota of the container."),
    Descriptor("container_spec_memory_limit_bytes", "Memory limit for the container."),
    Descriptor(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
    ),
    Descriptor("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container."),
    Descriptor(
        "container_start_time_seconds", "Start time of the container since unix epoch in seconds."
    ),
    # writable layer
    Descriptor("container_fs_inodes_free", "Number of available Inodes"),
    Descriptor("container_fs_inodes_total", "Number of Inodes"),
    Descriptor(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
    ),
    Descriptor(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
    ),
    # block I/O
    Descriptor("container_fs_reads_bytes_total", "Cumulative count of bytes read", _DEVICE),
    Descriptor("container_fs_reads_total", "Cumulative count of reads completed", _DEVICE),
    Descriptor("container_fs_writes_bytes_total", "Cumulative count of bytes written", _DEVICE),
    Descriptor("container_fs_writes_total", "Cumulative count of writes completed", _DEVICE),
    Descriptor(
        "container_blkio_device_usage_total",
        "Blkio Device bytes usage",
        ("device", "major", "minor", "operation"),
    ),
    # huge pages
    Descriptor("container_hugetlb_usage_bytes", "Current hugepage usage", ("pagesize",), HUGETLB),
    Descriptor(
        "container_hugetlb_max_usage_bytes",
        "Maximum hugepage usages recorded",
        ("pagesize",),
        HUGETLB,
    ),
    # pressure (PSI)
    Descriptor(
        "container_pressure_cpu_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        group=PRESSURE,
    ),
    Descriptor(
        "container_pressure_cpu_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        group=PRESSURE,
    ),
    Descriptor(
        "container_pressure_memory_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to memory"
        " congestion.",
        group=PRESSURE,
    ),
    Descriptor(
        "container_pressure_memory_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to memory congestion.",
        group=PRESSURE,
    ),
    Descriptor(
        "container_pressure_io_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        group=PRESSURE,
    ),
    Descriptor(
        "container_pressure_io_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to IO congestion.",
        group=PRESSURE,
    ),
)

BY_NAME = {d.name: d for d in DESCRIPTORS}


def enabled_descriptors(hugetlb: bool, pressure: bool) -> tuple[Descriptor, ...]:
    """The descriptors this host can fill: huge pages need the hugetlb controller, the
    pressure metrics need PSI per cgroup (cgroup v2 with CONFIG_PSI)."""
    groups = {ALWAYS} | ({HUGETLB} if hugetlb else set()) | ({PRESSURE} if pressure else set())
    return tuple(d for d in DESCRIPTORS if d.group in groups)


@dataclasses.dataclass(frozen=True)
class ContainerSample:
    """What the metrics of one container are computed from (read by the collector)."""

    container_id: str
    image: str
    namespace: str
    pod: str
    name: str
    cgroup: CgroupStats
    processes: ProcessFacts
    open_files_soft_limit: int | None
    layer: LayerUsage | None
    filesystem: tuple[int, int, int] | None  # capacity bytes, inodes, free inodes
    resources: pb.LinuxContainerResources
    created_at_ns: int
    device_names: dict[tuple[int, int], str]


class _Builder:
    """Collects Metric messages for names that are enabled."""

    def __init__(self, base: Sequence[str], enabled: frozenset[str]) -> None:
        self.base = list(base)
        self.enabled = enabled
        self.metrics: list[pb.Metric] = []

    def add(
        self,
        name: str,
        value: int,
        metric_type: pb.MetricType,
        labels: Sequence[str] = (),
        timestamp_ns: int = 0,
    ) -> None:
        if name not in self.enabled:
            return
        self.metrics.append(
            pb.Metric(
                name=name,
                timestamp=timestamp_ns,
                metric_type=metric_type,
                label_values=[*self.base, *labels],
                value=pb.UInt64Value(value=max(0, int(value))),
            )
        )


def _spec_memory(value: int) -> int:
    # OCI/CRI "no limit" is 0 or -1; cAdvisor reports an unlimited spec as 0 too.
    return value if value > 0 else 0


def container_metrics(sample: ContainerSample, enabled: frozenset[str]) -> list[pb.Metric]:
    """The metrics of one container (every enabled name but the network ones)."""
    b = _Builder(
        (sample.container_id, sample.image, sample.namespace, sample.pod, sample.name), enabled
    )
    cg = sample.cgroup
    b.add("container_last_seen", int(time.time()), GAUGE)
    # cpu
    b.add("container_cpu_user_seconds_total", cg["cpu_user_ns"] // NS_PER_S, COUNTER)
    b.add("container_cpu_system_seconds_total", cg["cpu_system_ns"] // NS_PER_S, COUNTER)
    b.add("container_cpu_usage_seconds_total", cg["cpu_usage_ns"] // NS_PER_S, COUNTER, ["total"])
    b.add("container_cpu_cfs_periods_total", cg["cpu_nr_periods"], COUNTER)
    b.add("container_cpu_cfs_throttled_periods_total", cg["cpu_nr_throttled"], COUNTER)
    b.add("container_cpu_cfs_throttled_seconds_total", cg["cpu_throttled_ns"] // NS_PER_S, COUNTER)
    # memory
    b.add("container_memory_cache", cg["memory_cache_bytes"], GAUGE)
    b.add("container_memory_rss", cg["memory_rss_bytes"], GAUGE)
    b.add("container_memory_kernel_usage", cg["memory_kernel_bytes"], GAUGE)
    b.add("container_memory_mapped_file", cg["memory_mapped_file_bytes"], GAUGE)
    b.add("container_memory_swap", cg["memory_swap_usage_bytes"], GAUGE)
    b.add("container_memory_failcnt", cg["memory_failcnt"], COUNTER)
    b.add("container_memory_usage_bytes", cg["memory_usage_bytes"], GAUGE)
    b.add("container_memory_max_usage_bytes", cg["memory_max_usage_bytes"], GAUGE)
    b.add("container_memory_working_set_bytes", cg["memory_working_set_bytes"], GAUGE)
    # A leaf cgroup's counters are also its hierarchy's: both scopes carry the same value.
    for failure_type, key in (
        ("pgfault", "memory_page_faults"),
        ("pgmajfault", "memory_major_page_faults"),
    ):
        for scope in ("container", "hierarchy"):
            b.add(
                "container_memory_failures_total",
                cg[key],  # type: ignore[literal-required]
                COUNTER,
                [failure_type, scope],
            )
    b.add("container_oom_events_total", cg["oom_kill_count"], COUNTER)
    # processes
    b.add("container_file_descriptors", sample.processes.file_descriptors, GAUGE)
    b.add("container_processes", cg["pids_current"], GAUGE)
    b.add("container_sockets", sample.processes.sockets, GAUGE)
    b.add("container_threads", sample.processes.threads, GAUGE)
    b.add("container_threads_max", cg["pids_limit"], GAUGE)
    if sample.open_files_soft_limit is not None:
        b.add("container_ulimits_soft", sample.open_files_soft_limit, GAUGE, ["max_open_files"])
    # spec
    res = sample.resources
    b.add("container_spec_cpu_period", res.cpu_period, GAUGE)
    b.add("container_spec_cpu_shares", res.cpu_shares, GAUGE)
    b.add("container_spec_cpu_quota", res.cpu_quota if res.cpu_quota > 0 else 0, GAUGE)
    b.add("container_spec_memory_limit_bytes", _spec_memory(res.memory_limit_in_bytes), GAUGE)
    reservation = res.unified.get("memory.low", "")
    b.add(
        "container_spec_memory_reservation_limit_bytes",
        int(reservation) if reservation.isdigit() else 0,
        GAUGE,
    )
    b.add(
        "container_spec_memory_swap_limit_bytes",
        _spec_memory(res.memory_swap_limit_in_bytes),
        GAUGE,
    )
    b.add("container_start_time_seconds", sample.created_at_ns // NS_PER_S, GAUGE)
    # writable layer
    if sample.filesystem is not None:
        capacity, inodes, free_inodes = sample.filesystem
        b.add("container_fs_limit_bytes", capacity, GAUGE)
        b.add("container_fs_inodes_total", inodes, GAUGE)
        b.add("container_fs_inodes_free", free_inodes, GAUGE)
    if sample.layer is not None:
        b.add(
            "container_fs_usage_bytes",
            sample.layer.used_bytes,
            GAUGE,
            timestamp_ns=sample.layer.timestamp_ns,
        )
    # block I/O, per device
    for io in cg["io"]:
        numbers = (io["major"], io["minor"])
        device = sample.device_names.get(numbers, "")
        b.add("container_fs_reads_bytes_total", io["read_bytes"], COUNTER, [device])
        b.add("container_fs_reads_total", io["reads"], COUNTER, [device])
        b.add("container_fs_writes_bytes_total", io["write_bytes"], COUNTER, [device])
        b.add("container_fs_writes_total", io["writes"], COUNTER, [device])
        major, minor = str(io["major"]), str(io["minor"])
        b.add(
            "container_blkio_device_usage_total",
            io["read_bytes"],
            COUNTER,
            [device, major, minor, "Read"],
        )
        b.add(
            "container_blkio_device_usage_total",
            io["write_bytes"],
            COUNTER,
            [device, major, minor, "Write"],
        )
    # huge pages
    for size, huge in sorted(cg["hugetlb"].items()):
        b.add("container_hugetlb_usage_bytes", huge["usage_bytes"], GAUGE, [size])
        b.add("container_hugetlb_max_usage_bytes", huge["max_usage_bytes"], GAUGE, [size])
    # pressure: "full" is the stalled time, "some" the waiting time (cAdvisor)
    for resource in ("cpu", "memory", "io"):
        lines = cg["pressure"].get(resource) or {}
        for kind, word in (("full", "stalled"), ("some", "waiting")):
            data = lines.get(kind)
            if data is not None:
                b.add(
                    f"container_pressure_{resource}_{word}_seconds_total",
                    data["total_us"] // US_PER_S,
                    COUNTER,
                )
    return b.metrics


_NETWORK: tuple[tuple[str, Callable[[InterfaceCounters], int]], ...] = (
    ("container_network_receive_bytes_total", lambda i: i.rx_bytes),
    ("container_network_receive_packets_total", lambda i: i.rx_packets),
    ("container_network_receive_packets_dropped_total", lambda i: i.rx_dropped),
    ("container_network_receive_errors_total", lambda i: i.rx_errors),
    ("container_network_transmit_bytes_total", lambda i: i.tx_bytes),
    ("container_network_transmit_packets_total", lambda i: i.tx_packets),
    ("container_network_transmit_packets_dropped_total", lambda i: i.tx_dropped),
    ("container_network_transmit_errors_total", lambda i: i.tx_errors),
)


def network_metrics(
    sandbox_id: str,
    namespace: str,
    pod: str,
    interfaces: Sequence[InterfaceCounters],
    enabled: frozenset[str],
) -> list[pb.Metric]:
    """The pod-level network metrics (container "POD", as kubelet's cAdvisor had them)."""
    b = _Builder((sandbox_id, "", namespace, pod, "POD"), enabled)
    for counters in interfaces:
        for name, value in _NETWORK:
            b.add(name, value(counters), COUNTER, [counters.name])
    return b.metrics
