"""Container and pod stats without a kernel: cgroup fixture trees (v1 and v2) through the
managers and cri.stats.translate, CPU rates, /proc/net/dev through a fake /proc, the
writable-layer walk, metric labels against their descriptors, Stream* chunking."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from cri.api import api_pb2 as pb
from cri.chunks import chunked
from cri.stats import metrics as m
from cri.stats import translate as tr
from cri.stats.disk import LayerUsage, LayerUsageCache, directory_usage
from cri.stats.network import parse_net_dev, read_pod_interfaces
from cri.stats.procs import ProcessFacts, process_facts, soft_open_files_limit
from cri.stats.rates import CpuRates
from sandbox.linux.cgroups import open_manager
from sandbox.linux.cgroups.manager import empty_stats

MIB = 1 << 20
NOW_NS = 1_700_000_000_000_000_000


def write_tree(root: pathlib.Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def v1_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A v1 hierarchy with one container leaf /pod/ctr: 2.5 s of CPU, 100 MiB used of
    which 30 MiB inactive file cache, a 256 MiB limit, 1 MiB of swap."""
    root = tmp_path / "cgroup"
    leaf = "pod/ctr"
    write_tree(
        root,
        {
            f"cpu,cpuacct/{leaf}/cpuacct.usage": "2500000000\n",
            f"cpu,cpuacct/{leaf}/cpuacct.stat": "user 200\nsystem 50\n",
            f"cpu,cpuacct/{leaf}/cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 7\n",
            f"memory/{leaf}/memory.usage_in_bytes": f"{100 * MIB}\n",
            f"memory/{leaf}/memory.limit_in_bytes": f"{256 * MIB}\n",
            f"memory/{leaf}/memory.memsw.usage_in_bytes": f"{101 * MIB}\n",
            f"memory/{leaf}/memory.memsw.limit_in_bytes": f"{512 * MIB}\n",
            f"memory/{leaf}/memory.stat": (
                f"cache {40 * MIB}\nrss {60 * MIB}\ntotal_cache {40 * MIB}\n"
                f"total_rss {60 * MIB}\ntotal_inactive_file {30 * MIB}\n"
                "total_pgfault 500\ntotal_pgmajfault 5\n"
            ),
            f"memory/{leaf}/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
            f"pids/{leaf}/pids.current": "3\n",
            f"pids/{leaf}/pids.max": "max\n",
        },
    )
    return root


@pytest.fixture
def v2_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A v2 hierarchy with the same container as v1_tree, plus PSI."""
    root = tmp_path / "unified"
    leaf = "pod/ctr"
    write_tree(
        root,
        {
            "cgroup.controllers": "cpu memory pids io\n",
            f"{leaf}/cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
            f"{leaf}/memory.current": f"{100 * MIB}\n",
            f"{leaf}/memory.max": f"{256 * MIB}\n",
            f"{leaf}/memory.swap.current": f"{MIB}\n",
            f"{leaf}/memory.swap.max": f"{256 * MIB}\n",
            f"{leaf}/memory.stat": (
                f"anon {60 * MIB}\nfile {40 * MIB}\ninactive_file {30 * MIB}\n"
                "pgfault 500\npgmajfault 5\n"
            ),
            f"{leaf}/memory.events": "max 0\noom 1\noom_kill 1\n",
            f"{leaf}/pids.current": "3\n",
            f"{leaf}/cpu.pressure": (
                "some avg10=12.50 avg60=3.00 avg300=1.00 total=4000\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
            ),
            f"{leaf}/io.pressure": (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=20\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=10\n"
            ),
        },
    )
    return root


@pytest.mark.parametrize("tree", ["v1_tree", "v2_tree"])
def test_container_stats_from_either_hierarchy(tree: str, request: pytest.FixtureRequest) -> None:
    """The same container reads the same on v1 and v2: cumulative CPU, working set =
    usage - inactive_file, available = limit - working set, rss, faults, swap."""
    root: pathlib.Path = request.getfixturevalue(tree)
    stats = open_manager("/pod/ctr", root=str(root)).stats()
    cpu = tr.cpu_usage(stats, NOW_NS, None)
    assert cpu.timestamp == NOW_NS
    assert cpu.usage_core_nano_seconds.value == 2_500_000_000
    assert not cpu.HasField("usage_nano_cores")  # no previous sample: unknown, not 0
    memory = tr.memory_usage(stats, NOW_NS)
    assert memory.usage_bytes.value == 100 * MIB
    assert memory.working_set_bytes.value == 70 * MIB
    assert memory.available_bytes.value == 186 * MIB
    assert memory.rss_bytes.value == 60 * MIB
    assert memory.page_faults.value == 500
    assert memory.major_page_faults.value == 5
    swap = tr.swap_usage(stats, NOW_NS)
    assert swap.swap_usage_bytes.value == MIB
    assert swap.swap_available_bytes.value == 255 * MIB
    assert stats["pids_current"] == 3
    assert stats["oom_kill_count"] == 1


def test_psi_only_where_the_kernel_has_it(v1_tree: pathlib.Path, v2_tree: pathlib.Path) -> None:
    v1 = open_manager("/pod/ctr", root=str(v1_tree)).stats()
    assert not tr.cpu_usage(v1, NOW_NS, None).HasField("psi")
    assert tr.io_usage(v1, NOW_NS) is None
    v2 = open_manager("/pod/ctr", root=str(v2_tree)).stats()
    psi = tr.cpu_usage(v2, NOW_NS, None).psi
    assert psi.Some.Total == 4_000_000  # microseconds in the file, nanoseconds in CRI
    assert psi.Some.Avg10 == 12.5
    assert psi.Full.Total == 1_000_000
    assert not tr.memory_usage(v2, NOW_NS).HasField("psi")  # no memory.pressure file
    io = tr.io_usage(v2, NOW_NS)
    assert io is not None
    assert io.psi.Some.Total == 20_000


def test_unlimited_memory_has_no_available_bytes() -> None:
    stats = empty_stats()
    stats["memory_usage_bytes"] = stats["memory_working_set_bytes"] = 5 * MIB
    assert not tr.memory_usage(stats, NOW_NS).HasField("available_bytes")
    assert not tr.swap_usage(stats, NOW_NS).HasField("swap_available_bytes")


def test_summed_adds_counters_not_limits() -> None:
    a, b = empty_stats(), empty_stats()
    a["cpu_usage_ns"], b["cpu_usage_ns"] = 10, 32
    a["pids_current"], b["pids_current"] = 1, 2
    a["memory_limit_bytes"] = b["memory_limit_bytes"] = 64 * MIB
    total = tr.summed([a, b])
    assert total["cpu_usage_ns"] == 42
    assert total["pids_current"] == 3
    assert total["memory_limit_bytes"] == 0


def test_cpu_rate_between_samples() -> None:
    rates = CpuRates(min_window_s=1.0)
    assert rates.update("c", 0, 0) is None
    # half a core over 2 s
    assert rates.update("c", 2_000_000_000, 1_000_000_000) == 500_000_000
    # 10 ms later: too short a window, the last rate stands and the anchor stays
    assert rates.update("c", 2_010_000_000, 1_900_000_000) == 500_000_000
    # two cores over the next second (measured from the anchor at 2 s)
    assert rates.update("c", 3_000_000_000, 3_000_000_000) == 2_000_000_000
    # a counter going backwards (new cgroup) starts over
    assert rates.update("c", 4_000_000_000, 5) is None
    rates.forget("c")
    assert rates.update("c", 5_000_000_000, 10) is None


# /proc/net/dev: two header lines, then per interface 8 receive and 8 transmit counters.
NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs"
    " drop fifo colls carrier compressed\n"
    "    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n"
    "  eth0: 1048576 900 1 2 0 0 0 0 4096 50 3 4 0 0 0 0\n"
    "  net1: 7 1 0 0 0 0 0 0 8 1 0 0 0 0 0 0\n"
)


def test_parse_net_dev_and_default_interface() -> None:
    interfaces = [i for i in parse_net_dev(NET_DEV) if i.name != "lo"]
    eth0 = interfaces[0]
    assert (eth0.name, eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (
        "eth0",
        1048576,
        900,
        1,
        2,
    )
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (4096, 50, 3, 4)
    usage = tr.network_usage(interfaces, NOW_NS)
    assert usage.default_interface.name == "eth0"
    assert usage.default_interface.rx_bytes.value == 1048576
    assert [i.name for i in usage.interfaces] == ["net1"]


def fake_proc(root: pathlib.Path, pid: int, pin: pathlib.Path | None) -> None:
    (root / str(pid) / "net").mkdir(parents=True)
    (root / str(pid) / "net" / "dev").write_text(NET_DEV)
    (root / str(pid) / "ns").mkdir()
    target = pin if pin is not None else root / f"other-ns-{pid}"
    if pin is None:
        target.write_text("")
    os.link(target, root / str(pid) / "ns" / "net")  # same inode: "same namespace"


def test_pod_interfaces_only_through_a_process_in_the_pinned_namespace(
    tmp_path: pathlib.Path,
) -> None:
    pin = tmp_path / "pin"
    pin.write_text("")
    proc = tmp_path / "proc"
    fake_proc(proc, 10, None)  # a recycled pid, elsewhere
    fake_proc(proc, 20, pin)
    found = read_pod_interfaces([10, 20], str(pin), str(proc))
    assert found is not None
    assert [i.name for i in found] == ["eth0", "net1"]
    assert read_pod_interfaces([10, 30], str(pin), str(proc)) is None


def test_process_facts_from_proc(tmp_path: pathlib.Path) -> None:
    base = tmp_path / "7"
    (base / "task" / "7").mkdir(parents=True)
    (base / "task" / "8").mkdir()
    (base / "fd").mkdir()
    os.symlink("/dev/null", base / "fd" / "0")
    os.symlink("socket:[1234]", base / "fd" / "3")
    (base / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            1024                 1048576              files\n"
    )
    assert process_facts([7, 99], str(tmp_path)) == ProcessFacts(
        file_descriptors=2, sockets=1, threads=2
    )
    assert soft_open_files_limit(7, str(tmp_path)) == 1024
    assert soft_open_files_limit(99, str(tmp_path)) is None


def test_directory_usage_counts_blocks_and_inodes_once(tmp_path: pathlib.Path) -> None:
    upper = tmp_path / "upper"
    (upper / "a" / "b").mkdir(parents=True)
    (upper / "a" / "b" / "data").write_bytes(b"x" * (256 * 1024))
    os.link(upper / "a" / "b" / "data", upper / "hardlink")
    used, inodes = directory_usage(str(upper))
    assert inodes == 4  # upper, a, b, data (the hard link is the same inode)
    assert used >= 256 * 1024
    assert directory_usage(str(tmp_path / "missing")) == (0, 0)


def test_layer_cache_measures_on_request_and_forgets(tmp_path: pathlib.Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_bytes(b"y" * 8192)
    cache = LayerUsageCache(refresh_s=60)
    cache.request("c1", str(upper))  # queued for the worker
    usage = cache.measure("c1")  # what the worker does
    assert usage is not None
    assert usage.inodes_used == 2
    assert cache.get("c1") == usage
    cache.forget("c1")
    assert cache.get("c1") is None
    cache.stop()


def test_layer_cache_worker_measures_in_the_background(tmp_path: pathlib.Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    cache = LayerUsageCache(refresh_s=60)
    try:
        cache.request("c1", str(upper))
        for _ in range(200):
            if cache.get("c1") is not None:
                break
            time.sleep(0.01)
        assert cache.get("c1") is not None
    finally:
        cache.stop()


def sample(**changes: object) -> m.ContainerSample:
    cgroup = empty_stats()
    cgroup["cpu_usage_ns"] = 3_700_000_000
    cgroup["io"] = [
        {"major": 8, "minor": 0, "read_bytes": 1, "write_bytes": 2, "reads": 3, "writes": 4}
    ]
    cgroup["hugetlb"] = {"2MB": {"usage_bytes": 0, "max_usage_bytes": 0}}
    cgroup["pressure"] = {
        r: {k: {"total_us": 2_000_000, "avg10": 0.0, "avg60": 0.0, "avg300": 0.0}
            for k in ("some", "full")}
        for r in ("cpu", "memory", "io")
    }  # fmt: skip
    fields: dict[str, object] = {
        "container_id": "c1",
        "image": "busybox:1",
        "namespace": "ns",
        "pod": "p",
        "name": "app",
        "cgroup": cgroup,
        "processes": ProcessFacts(3, 1, 4),
        "open_files_soft_limit": 1024,
        "layer": LayerUsage(4096, 3, NOW_NS),
        "filesystem": (10 * MIB, 1000, 900),
        "resources": pb.LinuxContainerResources(
            cpu_period=100000, cpu_quota=20000, cpu_shares=1024, memory_limit_in_bytes=64 * MIB
        ),
        "created_at_ns": NOW_NS,
        "device_names": {(8, 0): "/dev/sda"},
    }
    fields.update(changes)
    return m.ContainerSample(**fields)  # type: ignore[arg-type]


def test_every_metric_matches_its_descriptor() -> None:
    """Label values line up with the descriptor's keys (kubelet zips them), and with every
    group enabled every descriptor gets a value."""
    enabled = frozenset(m.BY_NAME)
    metrics = m.container_metrics(sample(), enabled)
    interfaces = parse_net_dev(NET_DEV)
    metrics += m.network_metrics("s1", "ns", "p", interfaces, enabled)
    for metric in metrics:
        descriptor = m.BY_NAME[metric.name].to_pb()
        assert len(metric.label_values) == len(descriptor.label_keys), metric.name
        assert metric.label_values[0], metric.name
        assert metric.label_values[4], metric.name
    assert {metric.name for metric in metrics} == set(m.BY_NAME)
    by_name = {metric.name: metric for metric in metrics}
    assert by_name["container_cpu_usage_seconds_total"].value.value == 3
    assert by_name["container_cpu_usage_seconds_total"].label_values[-1] == "total"
    assert by_name["container_pressure_io_stalled_seconds_total"].value.value == 2
    assert by_name["container_fs_usage_bytes"].timestamp == NOW_NS  # cached, not live
    assert by_name["container_memory_working_set_bytes"].timestamp == 0  # live
    assert by_name["container_spec_cpu_quota"].value.value == 20000
    assert by_name["container_spec_memory_limit_bytes"].value.value == 64 * MIB
    network = [x for x in metrics if x.name == "container_network_receive_bytes_total"]
    assert [x.label_values for x in network][1] == ["s1", "", "ns", "p", "POD", "eth0"]


def test_descriptors_follow_what_the_host_offers() -> None:
    """Huge pages and pressure only when the host can fill them; the rest always, with
    help text and label keys (critest checks both)."""
    plain = {d.name for d in m.enabled_descriptors(hugetlb=False, pressure=False)}
    assert "container_hugetlb_usage_bytes" not in plain
    assert "container_pressure_cpu_stalled_seconds_total" not in plain
    assert {"container_cpu_usage_seconds_total", "container_network_receive_bytes_total"} <= plain
    full = m.enabled_descriptors(hugetlb=True, pressure=True)
    assert {d.name for d in full} == set(m.BY_NAME)
    for descriptor in full:
        message = descriptor.to_pb()
        assert message.help
        assert message.label_keys[:5] == list(m.BASE_LABELS)


def test_disabled_metrics_are_not_sent() -> None:
    names = {x.name for x in m.container_metrics(sample(), frozenset({"container_last_seen"}))}
    assert names == {"container_last_seen"}


def test_chunks_keep_each_item_once_and_in_order() -> None:
    items = [pb.PodSandbox(id=f"{i:04d}", annotations={"a": "x" * 1000}) for i in range(50)]
    chunks = list(chunked(items, max_bytes=8000))
    assert len(chunks) > 1
    assert all(chunk for chunk in chunks)
    assert [item.id for chunk in chunks for item in chunk] == [item.id for item in items]
    assert all(sum(i.ByteSize() for i in chunk) <= 8000 for chunk in chunks)
    assert list(chunked([], max_bytes=10)) == []
    big = [pb.PodSandbox(id="big", annotations={"a": "x" * 100})]
    assert list(chunked(big, max_bytes=10)) == [big]  # alone, never dropped
