"""Container and pod stats and CRI metrics from the real daemon, per runtime handler:
checked against the test's own reading of the cgroup files, a TCP transfer the test
makes into the pod, a file written into the writable layer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.containers import CtrCrib, registry, wait_for  # noqa: F401 - fixture
from tests.e2e.observability import PREFIX, TEST_RANGE, KernelView, obs_crib, within
from tests.handlers import HANDLERS
from tests.leakcheck import leak_check
from tests.registry import Registry

pytestmark = [pytest.mark.root, pytest.mark.e2e]

MIB = 1 << 20
HELD_MIB = 48


@pytest.fixture(scope="module")
def no_leaks() -> Iterator[None]:
    yield from leak_check(PREFIX, TEST_RANGE)


@pytest.fixture(scope="module", params=HANDLERS)
def crib(
    request: pytest.FixtureRequest,
    registry: Registry,  # noqa: F811 - the module fixture
    no_leaks: None,
) -> Iterator[CtrCrib]:
    with obs_crib(request.param, registry) as crib:
        yield crib


def container_stats(crib: CtrCrib, container_id: str) -> pb.ContainerStats:
    request = pb.ContainerStatsRequest(container_id=container_id)
    return crib.runtime().ContainerStats(request).stats


def pod_stats(crib: CtrCrib, sandbox_id: str) -> pb.PodSandboxStats:
    request = pb.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)
    return crib.runtime().PodSandboxStats(request).stats


def test_busy_container_matches_its_cgroup(crib: CtrCrib) -> None:
    """A container spinning one CPU and holding 48 MiB of tmpfs: cumulative CPU between
    the test's readings of the cgroup, usage_nano_cores within 10% of the rate the test
    computes from the cgroup over the same window, memory within 10%."""
    sandbox_id, pod_config = crib.run_pod()
    burn = f"dd if=/dev/zero of=/dev/shm/hold bs=1M count={HELD_MIB} && while :; do :; done"
    container_id = crib.run(sandbox_id, pod_config, crib.config("burn", ["sh", "-c", burn]))
    kernel = KernelView(crib.info(container_id)["cgroupsPath"])
    wait_for(lambda: kernel.memory()[1] >= HELD_MIB * MIB, 30, "the container never held 48 MiB")

    time.sleep(1.1)  # the previous sample is at least a window old
    before = kernel.timed_cpu()
    first = container_stats(crib, container_id)
    middle = kernel.timed_cpu()
    assert before[1] <= first.cpu.usage_core_nano_seconds.value <= middle[1]
    assert before[0] <= first.cpu.timestamp <= middle[0]
    usage, working_set = kernel.memory()
    assert within(first.memory.usage_bytes.value, usage)
    assert within(first.memory.working_set_bytes.value, working_set)
    assert first.memory.working_set_bytes.value >= HELD_MIB * MIB
    assert first.memory.timestamp > 0
    assert first.attributes.id == container_id
    assert first.attributes.metadata.name == "burn"

    time.sleep(1.2)
    second = container_stats(crib, container_id)
    after = kernel.timed_cpu()
    expected_nano_cores = (after[1] - before[1]) * 1e9 / (after[0] - before[0])
    assert expected_nano_cores > 0.5e9  # it does spin
    assert within(second.cpu.usage_nano_cores.value, expected_nano_cores)

    pod = pod_stats(crib, sandbox_id)
    assert pod.attributes.id == sandbox_id
    assert pod.linux.cpu.usage_core_nano_seconds.value >= second.cpu.usage_core_nano_seconds.value
    assert pod.linux.memory.working_set_bytes.value >= HELD_MIB * MIB
    assert pod.linux.process.process_count.value >= 2  # the pause and the shell
    assert [c.attributes.id for c in pod.linux.containers] == [container_id]
    crib.pods.remove_pod(sandbox_id)


def test_pod_with_its_own_cgroup_reads_that_cgroup(crib: CtrCrib) -> None:
    """kubelet gives each pod its own cgroup parent: the pod's usage is that cgroup's."""
    linux = pb.LinuxPodSandboxConfig(cgroup_parent=f"{crib.pods.cgroup_parent}/pod-own")
    sandbox_id, pod_config = crib.run_pod(linux=linux)
    spin = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 600"
    container_id = crib.run(sandbox_id, pod_config, crib.config("spin", ["sh", "-c", spin]))
    pod_kernel = KernelView(linux.cgroup_parent)
    wait_for(lambda: pod_kernel.cpu_usage_ns() > 100_000_000, 30, "the pod never used CPU")
    # The container first: the counters only grow, and the pod's cgroup holds it.
    ctr = container_stats(crib, container_id)
    before = pod_kernel.cpu_usage_ns()
    pod = pod_stats(crib, sandbox_id)
    after = pod_kernel.cpu_usage_ns()
    assert before <= pod.linux.cpu.usage_core_nano_seconds.value <= after
    assert pod.linux.cpu.usage_core_nano_seconds.value >= ctr.cpu.usage_core_nano_seconds.value
    crib.pods.remove_pod(sandbox_id)


RECEIVER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
c, _ = s.accept()
total = 0
while True:
    data = c.recv(65536)
    if not data:
        break
    total += len(data)
print(total, flush=True)
"""


def test_pod_network_counters_move_after_a_transfer(crib: CtrCrib) -> None:
    """4 MiB sent from the host to the pod over TCP show on the pod's eth0 (stats and
    metrics), read by crib without entering the pod."""
    sandbox_id, _ = crib.run_pod()
    pod_ip = crib.pods.status(sandbox_id).status.network.ip
    netns = crib.pods.netns(sandbox_id)
    before = pod_stats(crib, sandbox_id).linux.network
    assert before.default_interface.name == "eth0"
    assert not [i.name for i in before.interfaces if i.name == "lo"]

    receiver = subprocess.Popen(
        ["nsenter", f"--net={netns}", sys.executable, "-c", RECEIVER, pod_ip],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        payload = b"x" * (4 * MIB)
        with socket.create_connection((pod_ip, port), timeout=20) as conn:
            conn.sendall(payload)
        assert int(receiver.stdout.readline()) == len(payload)
    finally:
        receiver.kill()
        receiver.wait()
        if receiver.stdout is not None:
            receiver.stdout.close()

    after = pod_stats(crib, sandbox_id).linux.network
    received = after.default_interface.rx_bytes.value - before.default_interface.rx_bytes.value
    sent = after.default_interface.tx_bytes.value - before.default_interface.tx_bytes.value
    assert received >= 4 * MIB
    assert sent > 0  # the ACKs
    assert after.timestamp > before.timestamp

    metrics = crib.runtime().ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest())
    (ours,) = [p for p in metrics.pod_metrics if p.pod_sandbox_id == sandbox_id]
    rx = {
        tuple(x.label_values): x.value.value
        for x in ours.metrics
        if x.name == "container_network_receive_bytes_total"
    }
    meta = crib.pods.status(sandbox_id).status.metadata
    key = (sandbox_id, "", meta.namespace, meta.name, "POD", "eth0")
    assert rx[key] >= after.default_interface.rx_bytes.value
    crib.pods.remove_pod(sandbox_id)


def test_writable_layer_size_follows_what_the_container_writes(crib: CtrCrib) -> None:
    sandbox_id, pod_config = crib.run_pod()
    container_id = crib.run(sandbox_id, pod_config, crib.config("writer", ["sleep", "600"]))
    first = container_stats(crib, container_id).writable_layer
    assert first.fs_id.mountpoint.startswith(crib.base_dir)
    assert first.inodes_used.value >= 1
    crib.output(container_id, "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=4")
    wait_for(
        lambda: container_stats(crib, container_id).writable_layer.used_bytes.value >= 4 * MIB,
        30,
        "the writable layer never grew by 4 MiB",
    )
    crib.pods.remove_pod(sandbox_id)


def test_list_filters_and_exited_containers(crib: CtrCrib) -> None:
    """Filters by id, sandbox id (prefixes, as ListContainers) and labels; an exited
    container is not listed but ContainerStats still answers for it; unknown ids are
    NOT_FOUND."""
    sandbox_id, pod_config = crib.run_pod()
    web = crib.run(sandbox_id, pod_config, crib.config("web", ["sleep", "600"], labels={"t": "w"}))
    db = crib.run(sandbox_id, pod_config, crib.config("db", ["sleep", "600"], labels={"t": "d"}))
    done = crib.run(sandbox_id, pod_config, crib.config("done", ["true"]))
    crib.wait_state(done, pb.ContainerState.CONTAINER_EXITED)

    def listed(**flt: object) -> list[str]:
        request = pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(**flt))  # type: ignore[arg-type]
        return sorted(s.attributes.id for s in crib.runtime().ListContainerStats(request).stats)

    assert listed(pod_sandbox_id=sandbox_id[:12]) == sorted([web, db])
    assert listed(id=web[:12]) == [web]
    assert listed(label_selector={"t": "d"}) == [db]
    assert listed(pod_sandbox_id=sandbox_id, label_selector={"t": "none"}) == []
    exited = container_stats(crib, done)
    assert exited.attributes.id == done
    assert not exited.HasField("cpu")
    with pytest.raises(grpc.RpcError) as err:
        container_stats(crib, "0" * 64)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        pod_stats(crib, "0" * 64)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    pods = crib.runtime().ListPodSandboxStats(
        pb.ListPodSandboxStatsRequest(filter=pb.PodSandboxStatsFilter(id=sandbox_id[:10]))
    )
    assert [p.attributes.id for p in pods.stats] == [sandbox_id]
    crib.pods.remove_pod(sandbox_id)


# Descriptors that can lack values here: block I/O counters need a disk the container's
# cgroup charged reads or writes to (tmpfs and cached files do not).
MAY_BE_EMPTY = {
    "container_blkio_device_usage_total",
    "container_fs_reads_bytes_total",
    "container_fs_reads_total",
    "container_fs_writes_bytes_total",
    "container_fs_writes_total",
}


def test_metrics_fill_every_descriptor(crib: CtrCrib) -> None:
    """ListPodSandboxMetrics gives a value for each descriptor, with as many label values
    as the descriptor has keys (what critest's metrics specs check)."""
    sandbox_id, pod_config = crib.run_pod()
    resources = pb.LinuxContainerResources(
        cpu_period=100000, cpu_quota=20000, cpu_shares=1024, memory_limit_in_bytes=64 * MIB
    )
    container_id = crib.run(
        sandbox_id,
        pod_config,
        crib.config("app", ["sleep", "600"], linux=pb.LinuxContainerConfig(resources=resources)),
    )
    descriptors = crib.runtime().ListMetricDescriptors(pb.ListMetricDescriptorsRequest())
    keys = {d.name: len(d.label_keys) for d in descriptors.descriptors}
    assert "container_cpu_usage_seconds_total" in keys
    assert "container_memory_working_set_bytes" in keys
    metrics = crib.runtime().ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest())
    (ours,) = [p for p in metrics.pod_metrics if p.pod_sandbox_id == sandbox_id]
    (container,) = ours.container_metrics
    assert container.container_id == container_id
    found = list(ours.metrics) + list(container.metrics)
    for metric in found:
        assert len(metric.label_values) == keys[metric.name], metric.name
    assert set(keys) - {m.name for m in found} <= MAY_BE_EMPTY
    by_name = {m.name: m for m in container.metrics}
    assert by_name["container_spec_cpu_quota"].value.value == 20000
    assert by_name["container_spec_memory_limit_bytes"].value.value == 64 * MIB
    assert by_name["container_processes"].value.value >= 1
    assert by_name["container_memory_working_set_bytes"].label_values[:5] == [
        container_id,
        crib.image("busybox"),
        pod_config.metadata.namespace,
        pod_config.metadata.name,
        "app",
    ]
    assert os.path.isdir(crib.base_dir)
    crib.pods.remove_pod(sandbox_id)
