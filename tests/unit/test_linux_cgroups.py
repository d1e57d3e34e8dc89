"""cgroup v1 and v2 managers on fixture trees (temp dirs standing in for /sys/fs/cgroup).

mkdir in a temp dir creates no control files, so each test writes the files the kernel
would show, and a recording `write_file` keeps every write in order (a cgroup file is
not a regular file: each write is a separate command).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

from sandbox.linux.cgroups import manager as cgroup_manager
from sandbox.linux.cgroups import v1, v2
from sandbox.linux.cgroups.manager import (
    CgroupError,
    CgroupValueError,
    blkio_weight_to_io_weight,
    cpu_shares_to_weight,
    inner_path,
    open_manager,
)


class Writes:
    """Records (file relative to the fixture root, value) and writes like the real one."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: str, value: str) -> None:
        self.calls.append((os.path.relpath(path, self.root), value))
        cgroup_manager.write_file(path, value)

    def to(self, name: str) -> list[str]:
        return [value for path, value in self.calls if path.endswith("/" + name) or path == name]


def touch(directory: pathlib.Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)


V1_FILES = {
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_period_us": "100000",
        "cpu.stat": "",
        "cgroup.procs": "",
    },
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.stat": "", "cgroup.procs": ""},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cgroup.procs": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "0",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.usage_in_bytes": "0",
        "memory.stat": "",
        "cgroup.procs": "",
    },
    "pids": {"pids.max": "max", "pids.current": "0", "cgroup.procs": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "cgroup.procs": ""},
    "blkio": {"blkio.throttle.read_bps_device": "", "cgroup.procs": ""},
    "systemd": {"cgroup.procs": ""},
}


@pytest.fixture
def v1_root(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "cgroup"
    for hierarchy, files in V1_FILES.items():
        touch(root / hierarchy, files)
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("")
    return root


def v1_manager(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch, path: str = "/crt-c1"
) -> tuple[v1.CgroupV1Manager, Writes]:
    writes = Writes(root)
    monkeypatch.setattr(v1, "write_file", writes)
    own = {"cpu": "/", "memory": "/parent", "name=systemd": "/sd"}
    manager = v1.CgroupV1Manager.for_path(path, "c1", root=str(root), own=own)
    manager.create()
    for hierarchy, files in V1_FILES.items():
        touch(
            root / hierarchy / path.lstrip("/"),
            {
                k: v
                for k, v in files.items()
                if not (root / hierarchy / path.lstrip("/") / k).exists()
            },
        )
    return manager, writes


def test_v1_hierarchies_and_paths(v1_root: pathlib.Path) -> None:
    assert v1.hierarchies(str(v1_root)) == [
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "memory",
        "pids",
        "systemd",
    ]
    own = {"memory": "/kubepods", "name=systemd": "/system.slice"}
    relative = v1.CgroupV1Manager.for_path("pod/ctr", "c1", root=str(v1_root), own=own)
    dirs = relative.dirs()
    assert dirs["memory"] == f"{v1_root}/memory/kubepods/pod/ctr"
    assert dirs["systemd"] == f"{v1_root}/systemd/system.slice/pod/ctr"
    assert dirs["cpu"] == f"{v1_root}/cpu/pod/ctr"
    absolute = v1.CgroupV1Manager.for_path("/crt/x", "c1", root=str(v1_root), own=own)
    assert absolute.dirs()["memory"] == f"{v1_root}/memory/crt/x"
    assert "unified" not in absolute.dirs()


def test_open_manager_detects_the_version(v1_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    proc_cgroup = tmp_path / "self-cgroup"
    proc_cgroup.write_text("4:memory:/m\n1:name=systemd:/\n0::/u\n")
    manager = open_manager("/crt-1", "c1", root=str(v1_root), proc_self_cgroup=str(proc_cgroup))
    assert manager.unified is False
    unified_root = tmp_path / "v2"
    touch(unified_root, {"cgroup.controllers": "cpu memory pids"})
    manager = open_manager("rel", "c1", root=str(unified_root), proc_self_cgroup=str(proc_cgroup))
    assert manager.unified is True
    assert manager.dirs() == {"": f"{unified_root}/u/rel"}


def test_inner_path_rules() -> None:
    assert inner_path("", "ctr1", "/parent") == "/parent/ctr1"
    assert inner_path("/a/b/", "x", "/p") == "/a/b"
    assert inner_path("a/../b", "x", "/p") == "/p/b"
    assert inner_path("../../x", "c", "/") == "/x"  # normpath clamps at the root
    with pytest.raises(CgroupValueError, match="not a cgroup below the root"):
        inner_path("/", "x", "/")
    with pytest.raises(CgroupValueError, match="systemd cgroup driver is not supported"):
        inner_path("system.slice:crio:abc", "x", "/")


def test_v1_cpuset_copies_parent_values(
    v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = Writes(v1_root)
    monkeypatch.setattr(cgroup_manager, "write_file", cgroup_manager.write_file)
    monkeypatch.setattr(v1, "write_file", writes)
    original_mkdir = os.mkdir

    def mkdir_with_files(path: Any, mode: int = 0o777) -> None:
        original_mkdir(path, mode)
        if "cpuset" in str(path):
            touch(pathlib.Path(path), {"cpuset.cpus": "", "cpuset.mems": ""})

    monkeypatch.setattr(os, "mkdir", mkdir_with_files)
    manager = v1.CgroupV1Manager.for_path("/crt-a/crt-b", "c1", root=str(v1_root), own={})
    manager.create()
    assert writes.calls[:4] == [
        ("cpuset/crt-a/cpuset.cpus", "0-1"),
        ("cpuset/crt-a/cpuset.mems", "0"),
        ("cpuset/crt-a/crt-b/cpuset.cpus", "0-1"),
        ("cpuset/crt-a/crt-b/cpuset.mems", "0"),
    ]


def test_v1_cpuset_fills_a_parent_another_create_left_empty(
    v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A concurrent create made the shared parent a moment ago and has not copied its
    # cpus/mems yet: this create must fill it too, or the leaf copies empty values and
    # the kernel refuses the init (ENOSPC), which once hung create.
    touch(v1_root / "cpuset" / "crt-a", {"cpuset.cpus": "", "cpuset.mems": ""})
    writes = Writes(v1_root)
    monkeypatch.setattr(v1, "write_file", writes)
    original_mkdir = os.mkdir

    def mkdir_with_files(path: Any, mode: int = 0o777) -> None:
        original_mkdir(path, mode)
        if "cpuset" in str(path):
            touch(pathlib.Path(path), {"cpuset.cpus": "", "cpuset.mems": ""})

    monkeypatch.setattr(os, "mkdir", mkdir_with_files)
    manager = v1.CgroupV1Manager.for_path("/crt-a/crt-b", "c1", root=str(v1_root), own={})
    manager.create()
    for level in ("crt-a", "crt-a/crt-b"):
        assert (v1_root / "cpuset" / level / "cpuset.cpus").read_text() == "0-1"
        assert (v1_root / "cpuset" / level / "cpuset.mems").read_text() == "0"
    # A level that is already filled is left alone (a pod's own cpuset, kubelet's).
    (v1_root / "cpuset" / "crt-a" / "cpuset.cpus").write_text("1")
    before = len(writes.calls)
    v1.CgroupV1Manager.for_path("/crt-a/crt-c", "c2", root=str(v1_root), own={}).create()
    assert writes.calls[before:] == [
        ("cpuset/crt-a/crt-c/cpuset.cpus", "1"),
        ("cpuset/crt-a/crt-c/cpuset.mems", "0"),
    ]


def test_v1_apply_resources(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, writes = v1_manager(v1_root, monkeypatch)
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (v1_root / "memory" / "crt-c1" / name).write_text(str(32 << 20))
    warnings = manager.apply(
        {
            "cpu": {"shares": 512, "quota": 50000, "period": 200000, "cpus": "1", "mems": "0"},
            "memory": {
                "limit": 64 << 20,
                "swap": 128 << 20,
                "reservation": 32 << 20,
                "swappiness": 10,
            },
            "pids": {"limit": 100},
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
        }
    )
    assert writes.to("cpu.shares") == ["512"]
    names = [path.rsplit("/", 1)[1] for path, _ in writes.calls]
    assert names.index("cpu.cfs_period_us") < names.index("cpu.cfs_quota_us")
    assert writes.to("cpu.cfs_quota_us") == ["50000"]
    assert writes.to("cpuset.cpus") == ["1"]
    # Raising: memsw first, then the limit.
    assert names.index("memory.memsw.limit_in_bytes") < names.index("memory.limit_in_bytes")
    assert writes.to("memory.limit_in_bytes") == [str(64 << 20)]
    assert writes.to("memory.soft_limit_in_bytes") == [str(32 << 20)]
    assert writes.to("memory.swappiness") == ["10"]
    assert writes.to("pids.max") == ["100"]
    assert writes.to("blkio.throttle.read_bps_device") == ["8:0 1000"]
    assert any("blkio weight" in w for w in warnings)
    assert any("hugetlb controller not mounted" in w for w in warnings)


def test_v1_lowering_memory_writes_the_limit_first(
    v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, writes = v1_manager(v1_root, monkeypatch)
    (v1_root / "memory" / "crt-c1" / "memory.limit_in_bytes").write_text(str(256 << 20))
    manager.apply({"memory": {"limit": 64 << 20, "swap": 64 << 20}})
    names = [path.rsplit("/", 1)[1] for path, _ in writes.calls]
    assert names == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_unlimited_values(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, writes = v1_manager(v1_root, monkeypatch)
    manager.apply({"cpu": {"quota": -1}, "memory": {"limit": -1}, "pids": {"limit": 0}})
    assert writes.to("cpu.cfs_quota_us") == ["-1"]
    assert writes.to("memory.limit_in_bytes") == ["-1"]
    assert writes.to("pids.max") == ["max"]


def test_v1_device_rules_in_order(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, writes = v1_manager(v1_root, monkeypatch)
    manager.apply_devices(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
            {"allow": False, "type": "b", "major": 8, "access": "w"},
        ],
        ["c 10:200 rwm"],
    )
    assert writes.calls[0] == ("devices/crt-c1/devices.deny", "a")
    assert writes.calls[1] == ("devices/crt-c1/devices.allow", "c 10:229 rw")
    assert writes.calls[2] == ("devices/crt-c1/devices.deny", "b 8:* w")
    assert ("devices/crt-c1/devices.allow", "c 1:3 rwm") in writes.calls
    assert writes.calls[-1] == ("devices/crt-c1/devices.allow", "c 10:200 rwm")


def test_v1_unified_map_is_refused(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _ = v1_manager(v1_root, monkeypatch)
    with pytest.raises(CgroupError, match="needs cgroup v2"):
        manager.apply({"unified": {"memory.high": "1G"}})


def test_v1_write_error_names_file_and_value(
    v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, _ = v1_manager(v1_root, monkeypatch)
    os.unlink(v1_root / "pids" / "crt-c1" / "pids.max")
    with pytest.raises(CgroupError, match=r"open .*/pids/crt-c1/pids.max: No such file"):
        manager.apply({"pids": {"limit": 3}})


def test_v1_stats_and_oom(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _ = v1_manager(v1_root, monkeypatch)
    c = "crt-c1"
    touch(
        v1_root / "cpuacct" / c,
        {"cpuacct.usage": "123456789", "cpuacct.stat": "user 10\nsystem 5\n"},
    )
    touch(v1_root / "cpu" / c, {"cpu.stat": "nr_periods 7\nnr_throttled 2\nthrottled_time 999\n"})
    touch(
        v1_root / "memory" / c,
        {
            "memory.usage_in_bytes": str(100 << 20),
            "memory.stat": "cache 10\nrss 20\ntotal_cache 4194304\ntotal_rss 8388608\n"
            "total_inactive_file 10485760\ntotal_pgfault 77\ntotal_pgmajfault 3\n",
            "memory.limit_in_bytes": str(128 << 20),
            "memory.memsw.usage_in_bytes": str(101 << 20),
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
    )
    touch(v1_root / "pids" / c, {"pids.current": "4", "pids.max": "max"})
    stats = manager.stats()
    assert stats["cpu_usage_ns"] == 123456789
    assert stats["cpu_user_ns"] == 100_000_000
    assert stats["cpu_system_ns"] == 50_000_000
    assert stats["cpu_nr_throttled"] == 2
    assert stats["memory_usage_bytes"] == 100 << 20
    assert stats["memory_working_set_bytes"] == 90 << 20
    assert stats["memory_rss_bytes"] == 8 << 20
    assert stats["memory_page_faults"] == 77
    assert stats["memory_major_page_faults"] == 3
    assert stats["memory_limit_bytes"] == 128 << 20
    assert stats["memory_swap_usage_bytes"] == 1 << 20
    assert stats["pids_current"] == 4
    assert stats["pids_limit"] == 0
    assert stats["oom_kill_count"] == manager.oom_kill_count() == 2


def test_v1_detailed_stats(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak, failcnt, kernel memory, mapped files, the swap limit (memsw - memory),
    per-device I/O from the throttle files; no PSI on v1."""
    manager, _ = v1_manager(v1_root, monkeypatch)
    c = "crt-c1"
    touch(
        v1_root / "memory" / c,
        {
            "memory.usage_in_bytes": str(10 << 20),
            "memory.stat": "total_mapped_file 8192\ntotal_inactive_file 0\n",
            "memory.limit_in_bytes": str(64 << 20),
            "memory.memsw.limit_in_bytes": str(96 << 20),
            "memory.max_usage_in_bytes": str(20 << 20),
            "memory.failcnt": "6",
            "memory.kmem.usage_in_bytes": "65536",
        },
    )
    touch(
        v1_root / "blkio" / c,
        {
            "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n"
            "8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\n253:1 Read 512\nTotal 12800\n",
            "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\n253:1 Read 3\n",
        },
    )
    stats = manager.stats()
    assert stats["memory_max_usage_bytes"] == 20 << 20
    assert stats["memory_failcnt"] == 6
    assert stats["memory_kernel_bytes"] == 65536
    assert stats["memory_mapped_file_bytes"] == 8192
    assert stats["memory_swap_limit_bytes"] == 32 << 20
    assert stats["pressure"] == {}
    assert stats["io"] == [
        {"major": 8, "minor": 0, "read_bytes": 4096, "write_bytes": 8192, "reads": 1, "writes": 2},
        {"major": 253, "minor": 1, "read_bytes": 512, "write_bytes": 0, "reads": 3, "writes": 0},
    ]


def test_v1_hugetlb_stats(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(v1_root / "hugetlb", {"cgroup.procs": ""})
    manager, _ = v1_manager(v1_root, monkeypatch)
    touch(
        v1_root / "hugetlb" / "crt-c1",
        {
            "hugetlb.2MB.usage_in_bytes": str(4 << 20),
            "hugetlb.2MB.max_usage_in_bytes": str(6 << 20),
            "hugetlb.2MB.rsvd.usage_in_bytes": "0",
            "hugetlb.1GB.usage_in_bytes": "0",
            "hugetlb.1GB.max_usage_in_bytes": "0",
        },
    )
    assert manager.stats()["hugetlb"] == {
        "2MB": {"usage_bytes": 4 << 20, "max_usage_bytes": 6 << 20},
        "1GB": {"usage_bytes": 0, "max_usage_bytes": 0},
    }


def test_v1_unlimited_swap_is_zero(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _ = v1_manager(v1_root, monkeypatch)
    assert manager.stats()["memory_swap_limit_bytes"] == 0


def test_v1_pids_and_destroy(v1_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _ = v1_manager(v1_root, monkeypatch)
    (v1_root / "pids" / "crt-c1" / "cgroup.procs").write_text("10\n11\n")
    assert manager.pids() == [10, 11]
    for hierarchy in V1_FILES:
        for name in os.listdir(v1_root / hierarchy / "crt-c1"):
            os.unlink(v1_root / hierarchy / "crt-c1" / name)
    manager.destroy()
    assert not manager.exists()


# ---- v2 ----------------------------------------------------------------------------------

V2_FILES = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids",
    "cgroup.subtree_control": "",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "pids.max": "max",
    "io.weight": "default 100",
    "io.max": "",
    "hugetlb.2MB.max": "max",
    "memory.high": "max",
}


@pytest.fixture
def v2_root(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "unified"
    touch(
        root,
        {
            "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
            "cgroup.subtree_control": "cpu",
            "cgroup.procs": "",
        },
    )
    return root


def v2_manager(
    root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[v2.CgroupV2Manager, Writes]:
    writes = Writes(root)
    monkeypatch.setattr(v2, "write_file", writes)
    original_mkdir = os.mkdir

    def mkdir_with_files(path: Any, mode: int = 0o777) -> None:
        original_mkdir(path, mode)
        touch(pathlib.Path(path), V2_FILES)

    monkeypatch.setattr(os, "mkdir", mkdir_with_files)
    manager = v2.CgroupV2Manager("/kubepods/crt-c1", root=str(root))
    manager.create()
    monkeypatch.setattr(os, "mkdir", original_mkdir)
    return manager, writes


def test_v2_create_delegates_controllers_top_down(
    v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, writes = v2_manager(v2_root, monkeypatch)
    assert writes.calls == [
        ("cgroup.subtree_control", "+cpuset +io +memory +hugetlb +pids +rdma"),
        ("kubepods/cgroup.subtree_control", "+cpuset +cpu +io +memory +hugetlb +pids"),
    ]


def test_v2_apply_converts_v1_units(v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, writes = v2_manager(v2_root, monkeypatch)
    writes.calls.clear()
    warnings = manager.apply(
        {
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
            "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
            "pids": {"limit": 50},
            "blockIO": {
                "weight": 500,
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
            "devices": [{"allow": False, "access": "rwm"}],
            "unified": {"memory.high": "50000000"},
        }
    )
    assert writes.to("cpu.weight") == ["39"]
    assert writes.to("cpu.max") == ["50000 100000"]
    assert writes.to("cpuset.cpus") == ["0-1"]
    assert writes.to("memory.max") == [str(64 << 20)]
    assert writes.to("memory.swap.max") == [str(32 << 20)]
    assert writes.to("memory.low") == [str(16 << 20)]
    assert writes.to("pids.max") == ["50"]
    assert writes.to("io.weight") == [str(blkio_weight_to_io_weight(500))]
    assert writes.to("io.max") == ["8:0 wiops=100"]
    assert writes.to("hugetlb.2MB.max") == [str(2 << 20)]
    assert writes.calls[-1] == ("kubepods/crt-c1/memory.high", "50000000")
    assert any("not enforced on cgroup v2" in w for w in warnings)


def test_v2_quota_keeps_current_period_and_unlimited(
    v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, writes = v2_manager(v2_root, monkeypatch)
    (v2_root / "kubepods" / "crt-c1" / "cpu.max").write_text("max 250000\n")
    manager.apply({"cpu": {"quota": 125000}, "memory": {"limit": -1, "swap": -1}})
    assert writes.to("cpu.max") == ["125000 250000"]
    assert writes.to("memory.max") == ["max"]
    assert writes.to("memory.swap.max") == ["max"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"limit": 64, "swap": 32}}, "is below memory.limit"),
        ({"memory": {"swap": 32}}, "needs memory.limit"),
        ({"unified": {"../escape": "1"}}, 'invalid key "../escape"'),
        ({"unified": {"cgroup.procs": "1"}}, 'invalid key "cgroup.procs"'),
        ({"unified": {"rdma.max": "x"}}, "rdma.max: rdma controller not enabled"),
    ],
)
def test_v2_bad_values(
    v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch, resources: Any, message: str
) -> None:
    manager, _ = v2_manager(v2_root, monkeypatch)
    with pytest.raises(CgroupError, match=message):
        manager.apply(resources)


def test_v2_stats_and_oom(v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, _ = v2_manager(v2_root, monkeypatch)
    touch(
        v2_root / "kubepods" / "crt-c1",
        {
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\n"
            "nr_throttled 1\nthrottled_usec 20\n",
            "memory.current": str(50 << 20),
            "memory.stat": "anon 10485760\nfile 20971520\ninactive_file 5242880\npgfault 9\n"
            "pgmajfault 1\n",
            "memory.max": str(64 << 20),
            "memory.swap.current": "4096",
            "memory.events": "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n",
            "pids.current": "3",
            "pids.max": "20",
        },
    )
    stats = manager.stats()
    assert stats["cpu_usage_ns"] == 1_500_000
    assert stats["cpu_throttled_ns"] == 20_000
    assert stats["memory_working_set_bytes"] == 45 << 20
    assert stats["memory_rss_bytes"] == 10 << 20
    assert stats["memory_cache_bytes"] == 20 << 20
    assert stats["memory_limit_bytes"] == 64 << 20
    assert stats["memory_swap_usage_bytes"] == 4096
    assert stats["pids_current"] == 3
    assert stats["pids_limit"] == 20
    assert stats["oom_kill_count"] == 1


def test_v2_detailed_stats(v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PSI from the three pressure files, io.stat per device, memory.peak, events "max"
    as the failure count, kernel and mapped-file memory, memory.swap.max, hugetlb."""
    manager, _ = v2_manager(v2_root, monkeypatch)
    touch(
        v2_root / "kubepods" / "crt-c1",
        {
            "memory.current": str(8 << 20),
            "memory.stat": "anon 0\nkernel 131072\nfile_mapped 4096\n",
            "memory.peak": str(9 << 20),
            "memory.events": "low 0\nhigh 0\nmax 5\noom 0\noom_kill 0\n",
            "memory.swap.max": str(16 << 20),
            "cpu.pressure": "some avg10=1.50 avg60=0.25 avg300=0.00 total=2500000\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n",
            "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=3\n",
            "io.stat": "8:16 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
            "259:0 rbytes=1 wbytes=0 rios=1 wios=0\n",
            "hugetlb.2MB.current": str(2 << 20),
            "hugetlb.2MB.rsvd.current": "0",
        },
    )
    stats = manager.stats()
    assert stats["memory_max_usage_bytes"] == 9 << 20
    assert stats["memory_failcnt"] == 5
    assert stats["memory_kernel_bytes"] == 131072
    assert stats["memory_mapped_file_bytes"] == 4096
    assert stats["memory_swap_limit_bytes"] == 16 << 20
    assert stats["pressure"] == {
        "cpu": {
            "some": {"total_us": 2500000, "avg10": 1.5, "avg60": 0.25, "avg300": 0.0},
            "full": {"total_us": 1000, "avg10": 0.0, "avg60": 0.0, "avg300": 0.0},
        },
        "memory": {
            "some": {"total_us": 7, "avg10": 0.0, "avg60": 0.0, "avg300": 0.0},
            "full": {"total_us": 3, "avg10": 0.0, "avg60": 0.0, "avg300": 0.0},
        },
    }
    assert stats["io"] == [
        {"major": 8, "minor": 16, "read_bytes": 4096, "write_bytes": 8192, "reads": 1, "writes": 2},
        {"major": 259, "minor": 0, "read_bytes": 1, "write_bytes": 0, "reads": 1, "writes": 0},
    ]
    assert stats["hugetlb"] == {"2MB": {"usage_bytes": 2 << 20, "max_usage_bytes": 0}}


def test_v2_unlimited_swap_and_no_psi(
    v2_root: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, _ = v2_manager(v2_root, monkeypatch)
    touch(v2_root / "kubepods" / "crt-c1", {"memory.swap.max": "max"})
    stats = manager.stats()
    assert stats["memory_swap_limit_bytes"] == 0
    assert stats["pressure"] == {}


def test_conversions() -> None:
    assert cpu_shares_to_weight(2) == 1
    assert cpu_shares_to_weight(1024) == 39
    assert cpu_shares_to_weight(262144) == 10000
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
