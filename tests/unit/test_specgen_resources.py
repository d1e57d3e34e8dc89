"""linux.resources, process.oomScoreAdj, linux.cgroupsPath and the annotations."""

from __future__ import annotations

from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SpecInvalidError, container_cgroups_path
from cri.specgen.annotations import with_annotations
from cri.specgen.resources import with_cgroups_path, with_resources
from tests.unit.test_specgen_support import container_config, empty_spec, fake_host, make_inputs


def resources_for(host: Any = None, **fields: Any) -> dict[str, Any]:
    config = container_config()
    config.linux.resources.CopyFrom(pb.LinuxContainerResources(**fields))
    spec = with_resources(empty_spec(), make_inputs(config, host=host or fake_host()))
    return {"resources": spec["linux"].get("resources"), "oom": spec["process"].get("oomScoreAdj")}


def test_no_resources_message_sets_nothing() -> None:
    spec = with_resources(empty_spec(), make_inputs())
    assert "resources" not in spec["linux"]
    assert "oomScoreAdj" not in spec["process"]


def test_cpu() -> None:
    found = resources_for(
        cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1", cpuset_mems="0"
    )
    assert found["resources"] == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"}
    }
    assert found["oom"] == 0


def test_zero_means_not_specified() -> None:
    assert resources_for(cpu_shares=0, memory_limit_in_bytes=0)["resources"] == {}


def test_memory_limit_sets_swap_to_the_same_value() -> None:
    assert resources_for(memory_limit_in_bytes=16 << 20)["resources"]["memory"] == {
        "limit": 16 << 20,
        "swap": 16 << 20,
    }


def test_memory_swap_limit() -> None:
    memory = resources_for(memory_limit_in_bytes=100, memory_swap_limit_in_bytes=300)
    assert memory["resources"]["memory"] == {"limit": 100, "swap": 300}
    unlimited = resources_for(memory_limit_in_bytes=100, memory_swap_limit_in_bytes=-1)
    assert unlimited["resources"]["memory"]["swap"] == -1
    with pytest.raises(SpecInvalidError, match="memory_swap_limit_in_bytes 50 is lower"):
        resources_for(memory_limit_in_bytes=100, memory_swap_limit_in_bytes=50)


def test_no_swap_controller_no_swap_limit() -> None:
    memory = resources_for(fake_host(swap_controller=False), memory_limit_in_bytes=100)
    assert memory["resources"]["memory"] == {"limit": 100}


def test_hugepages() -> None:
    limits = [pb.HugepageLimit(page_size="2MB", limit=4 << 20)]
    assert resources_for(hugepage_limits=limits)["resources"]["hugepageLimits"] == [
        {"pageSize": "2MB", "limit": 4 << 20}
    ]
    skipped = resources_for(fake_host(hugetlb_controller=False), hugepage_limits=limits)
    assert "hugepageLimits" not in skipped["resources"]
    with pytest.raises(SpecInvalidError, match="page_size '2M'"):
        resources_for(hugepage_limits=[pb.HugepageLimit(page_size="2M", limit=1)])


def test_unified_needs_cgroup_v2() -> None:
    unified = {"memory.high": "100000", "io.weight": "default 100"}
    found = resources_for(fake_host(cgroup_v2=True), unified=unified)
    assert found["resources"]["unified"] == {"io.weight": "default 100", "memory.high": "100000"}
    with pytest.raises(SpecInvalidError, match=r"need a cgroup v2 host"):
        resources_for(unified=unified)
    with pytest.raises(SpecInvalidError, match=r"'\.\./escape' is not a cgroup v2 file name"):
        resources_for(fake_host(cgroup_v2=True), unified={"../escape": "1"})


def test_oom_score_adj_and_its_floor() -> None:
    assert resources_for(oom_score_adj=-997)["oom"] == -997
    assert resources_for(fake_host(min_oom_score_adj=0), oom_score_adj=-997)["oom"] == 0
    assert resources_for(fake_host(min_oom_score_adj=0), oom_score_adj=1000)["oom"] == 1000
    with pytest.raises(SpecInvalidError, match="oom_score_adj 1001"):
        resources_for(oom_score_adj=1001)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"cpu_shares": -1}, "cpu_shares -1 is negative"),
        ({"cpu_quota": -2}, "cpu_quota -2 is invalid"),
        ({"memory_limit_in_bytes": -5}, "memory_limit_in_bytes -5 is negative"),
    ],
)
def test_negative_numbers_are_refused(fields: dict[str, int], fragment: str) -> None:
    with pytest.raises(SpecInvalidError, match=fragment):
        resources_for(**fields)


def test_cpu_quota_minus_one_means_unlimited() -> None:
    assert resources_for(cpu_quota=-1)["resources"]["cpu"] == {"quota": -1}


@pytest.mark.parametrize(
    ("parent", "driver", "expected"),
    [
        ("/kubepods/burstable/podabc", "cgroupfs", "/kubepods/burstable/podabc/crib-c1"),
        ("kubepods/", "cgroupfs", "/kubepods/crib-c1"),
        ("", "cgroupfs", "/crib/crib-c1"),
        ("kubepods-burstable-podabc.slice", "systemd", "kubepods-burstable-podabc.slice:crib:c1"),
        ("", "systemd", "system.slice:crib:c1"),
    ],
)
def test_cgroups_path(parent: str, driver: str, expected: str) -> None:
    assert container_cgroups_path(parent, "c1", driver) == expected


def test_with_cgroups_path_and_unknown_driver() -> None:
    spec = with_cgroups_path(empty_spec(), make_inputs())
    assert spec["linux"]["cgroupsPath"] == "/kubepods/besteffort/podpod-uid-1/crib-container-1"
    with pytest.raises(SpecInvalidError, match="cgroup driver 'cgmanager'"):
        with_cgroups_path(empty_spec(), make_inputs(cgroup_driver="cgmanager"))


def test_annotations_are_containerds_cri_metadata() -> None:
    config = container_config()
    config.annotations["io.kubernetes.container.hash"] = "abc"
    config.labels["app"] = "web"
    spec = with_annotations(empty_spec(), make_inputs(config))
    assert spec["annotations"] == {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "sandbox-1",
        "io.kubernetes.cri.sandbox-name": "web-0",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": "pod-uid-1",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest",
    }


def test_image_name_annotation_prefers_what_the_user_wrote() -> None:
    config = container_config()
    config.image.user_specified_image = "busybox"
    spec = with_annotations(empty_spec(), make_inputs(config))
    assert spec["annotations"]["io.kubernetes.cri.image-name"] == "busybox"
