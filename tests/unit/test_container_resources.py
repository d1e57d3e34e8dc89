"""UpdateContainerResources values → OCI LinuxResources, and the merged status."""

from __future__ import annotations

import pytest

from cri.api import api_pb2 as pb
from cri.containers import resources as res
from cri.specgen import HostFacts, SpecInvalidError


def test_oci_resources() -> None:
    host = HostFacts(swap_controller=True)
    oci = res.oci_resources(
        pb.LinuxContainerResources(
            cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit_in_bytes=64 << 20
        ),
        host,
        "c1",
    )
    assert oci == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "memory": {"limit": 64 << 20, "swap": 64 << 20},
    }
    assert res.oci_resources(pb.LinuxContainerResources(), HostFacts(), "c1") == {}


def test_bad_values_are_invalid_argument() -> None:
    with pytest.raises(SpecInvalidError, match="cpu_shares -1"):
        res.oci_resources(pb.LinuxContainerResources(cpu_shares=-1), HostFacts(), "c1")


def test_merged_keeps_what_the_update_leaves_out() -> None:
    old = res.to_json(pb.LinuxContainerResources(cpu_shares=2, memory_limit_in_bytes=100))
    new = res.merged(old, pb.LinuxContainerResources(memory_limit_in_bytes=200))
    message = res.from_json(new)
    assert message.cpu_shares == 2
    assert message.memory_limit_in_bytes == 200
