"""The Stream* RPCs over 50 real pods with a container each, per runtime handler: every
pod and container exactly once, the same items as the List* RPCs with the same filters,
several chunks when the items outgrow one (annotations make them large), EOF at the end;
the Prometheus endpoint of the same crib counting them.

The 50 pods are made concurrently, once per handler, and shared by the module's tests.
"""

from __future__ import annotations

import collections
import concurrent.futures
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cri.api import api_pb2 as pb
from cri.api import api_pb2_grpc as pb_grpc
from tests.e2e.containers import CtrCrib, registry  # noqa: F401 - fixture
from tests.e2e.observability import PREFIX, TEST_RANGE, obs_crib
from tests.e2e.pods import free_port
from tests.handlers import HANDLERS
from tests.leakcheck import leak_check
from tests.registry import Registry

pytestmark = [pytest.mark.root, pytest.mark.e2e]

PODS = 50
# 50 x 120 KiB of annotations: more than gRPC's default 4 MiB a message, so ListPodSandbox
# on a default client fails where StreamPodSandboxes works.
PADDING = "p" * (120 * 1024)


class Fleet:
    """The module's crib, its 50 pods and containers, a client that accepts big messages."""

    def __init__(self, crib: CtrCrib, metrics_address: str) -> None:
        self.crib = crib
        self.metrics_address = metrics_address
        self.pods: dict[str, str] = {}  # sandbox id -> container id
        self.channel = grpc.insecure_channel(
            f"unix:{crib.pods.daemon.socket_path}",
            options=[("grpc.max_receive_message_length", 64 << 20)],
        )
        self.runtime = pb_grpc.RuntimeServiceStub(self.channel)
        self.images = pb_grpc.ImageServiceStub(self.channel)

    def make(self, index: int) -> None:
        sandbox_id, pod_config = self.crib.run_pod(
            name=f"fleet-{index}-{secrets.token_hex(2)}",
            labels={"fleet": "yes", "index": str(index)},
            annotations={"padding": PADDING},
        )
        config = self.crib.config(
            "app", ["sleep", "3600"], labels={"fleet": "yes"}, annotations={"padding": PADDING}
        )
        self.pods[sandbox_id] = self.crib.run(sandbox_id, pod_config, config)


@pytest.fixture(scope="module")
def no_leaks() -> Iterator[None]:
    yield from leak_check(PREFIX, TEST_RANGE)


@pytest.fixture(scope="module", params=HANDLERS)
def fleet(
    request: pytest.FixtureRequest,
    registry: Registry,  # noqa: F811 - the module fixture
    no_leaks: None,
) -> Iterator[Fleet]:
    address = f"127.0.0.1:{free_port()}"
    with obs_crib(request.param, registry, metrics={"address": address}) as crib:
        crib.image("busybox")  # pulled once, not by 50 threads
        fleet = Fleet(crib, address)
        # 8 at a time, as kubelet starts pods in parallel (4 while crib-runtime could hang
        # on a half-made cpuset; see tests/kernel/test_runtime_concurrency.py).
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fleet.make, range(PODS)))
        try:
            yield fleet
        finally:
            fleet.channel.close()


def gather(responses: Iterator[Any], field: str) -> tuple[list[Any], int]:
    """(every item of the stream in order, how many responses carried them)."""
    items: list[Any] = []
    count = 0
    for response in responses:
        chunk = list(getattr(response, field))
        assert chunk, "a response without items"
        items += chunk
        count += 1
    return items, count


def exactly_once(ids: list[str], expected: set[str]) -> None:
    counts = collections.Counter(ids)
    assert not [i for i, n in counts.items() if n > 1], "an item came twice"
    assert expected <= set(counts)


def test_stream_pod_sandboxes(fleet: Fleet) -> None:
    items, responses = gather(
        fleet.runtime.StreamPodSandboxes(pb.StreamPodSandboxesRequest(), timeout=60),
        "pod_sandboxes",
    )
    exactly_once([i.id for i in items], set(fleet.pods))
    assert responses > 1  # 6 MB of pods do not fit one chunk
    listed = fleet.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    assert [i.id for i in items] == [i.id for i in listed]
    flt = pb.PodSandboxFilter(label_selector={"index": "7"})
    streamed, _ = gather(
        fleet.runtime.StreamPodSandboxes(pb.StreamPodSandboxesRequest(filter=flt)),
        "pod_sandboxes",
    )
    listed = fleet.runtime.ListPodSandbox(pb.ListPodSandboxRequest(filter=flt)).items
    assert [i.id for i in streamed] == [i.id for i in listed]
    assert len(streamed) == 1
    # What the Stream* RPCs are for: a client with gRPC's default limit cannot list.
    with pytest.raises(grpc.RpcError) as err:
        fleet.crib.runtime().ListPodSandbox(pb.ListPodSandboxRequest())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    small_client, _ = gather(
        fleet.crib.runtime().StreamPodSandboxes(pb.StreamPodSandboxesRequest()), "pod_sandboxes"
    )
    assert len(small_client) == len(items)


def test_stream_containers(fleet: Fleet) -> None:
    items, responses = gather(
        fleet.runtime.StreamContainers(pb.StreamContainersRequest(), timeout=60), "containers"
    )
    exactly_once([i.id for i in items], set(fleet.pods.values()))
    assert responses > 1
    listed = fleet.runtime.ListContainers(pb.ListContainersRequest()).containers
    assert [i.id for i in items] == [i.id for i in listed]
    sandbox_id = next(iter(fleet.pods))
    flt = pb.ContainerFilter(pod_sandbox_id=sandbox_id)
    streamed, _ = gather(
        fleet.runtime.StreamContainers(pb.StreamContainersRequest(filter=flt)), "containers"
    )
    assert [i.id for i in streamed] == [fleet.pods[sandbox_id]]


def test_stream_container_stats(fleet: Fleet) -> None:
    items, _ = gather(
        fleet.runtime.StreamContainerStats(pb.StreamContainerStatsRequest(), timeout=60),
        "container_stats",
    )
    ids = [i.attributes.id for i in items]
    exactly_once(ids, set(fleet.pods.values()))
    assert all(i.cpu.timestamp > 0 and i.memory.timestamp > 0 for i in items)
    listed = fleet.runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
    assert sorted(ids) == sorted(s.attributes.id for s in listed)
    flt = pb.ContainerStatsFilter(label_selector={"fleet": "yes"})
    streamed, _ = gather(
        fleet.runtime.StreamContainerStats(pb.StreamContainerStatsRequest(filter=flt)),
        "container_stats",
    )
    assert sorted(i.attributes.id for i in streamed) == sorted(fleet.pods.values())


def test_stream_pod_sandbox_stats(fleet: Fleet) -> None:
    items, _ = gather(
        fleet.runtime.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest(), timeout=60),
        "pod_sandbox_stats",
    )
    exactly_once([i.attributes.id for i in items], set(fleet.pods))
    ours = [i for i in items if i.attributes.id in fleet.pods]
    assert all(len(i.linux.containers) == 1 for i in ours)
    assert all(i.linux.network.default_interface.name == "eth0" for i in ours)
    sandbox_id = next(iter(fleet.pods))
    flt = pb.PodSandboxStatsFilter(id=sandbox_id)
    streamed, _ = gather(
        fleet.runtime.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest(filter=flt)),
        "pod_sandbox_stats",
    )
    listed = fleet.runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(filter=flt)).stats
    assert [i.attributes.id for i in streamed] == [i.attributes.id for i in listed] == [sandbox_id]


def test_stream_pod_sandbox_metrics(fleet: Fleet) -> None:
    items, _ = gather(
        fleet.runtime.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest(), timeout=60),
        "pod_sandbox_metrics",
    )
    exactly_once([i.pod_sandbox_id for i in items], set(fleet.pods))
    listed = fleet.runtime.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest()).pod_metrics
    assert sorted(i.pod_sandbox_id for i in items) == sorted(i.pod_sandbox_id for i in listed)
    for item in items:
        if item.pod_sandbox_id in fleet.pods:
            assert [c.container_id for c in item.container_metrics] == [
                fleet.pods[item.pod_sandbox_id]
            ]


def test_stream_images(fleet: Fleet) -> None:
    items, _ = gather(fleet.images.StreamImages(pb.StreamImagesRequest(), timeout=60), "images")
    listed = fleet.images.ListImages(pb.ListImagesRequest()).images
    assert [i.id for i in items] == [i.id for i in listed]
    exactly_once([i.id for i in items], {i.id for i in listed})
    assert any(fleet.crib.image("busybox") in i.repo_tags for i in items)


def scrape(fleet: Fleet) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the endpoint, by sample name and sorted labels."""
    url = f"http://{fleet.metrics_address}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_prometheus_counts_the_fleet(fleet: Fleet) -> None:
    samples = scrape(fleet)
    assert samples["crib_pods_running"][()] == PODS
    assert samples["crib_containers_running"][()] == PODS
    assert samples["crib_pause_processes_alive"][()] == PODS
    assert samples["crib_conmon_processes_alive"][()] == 2 * PODS
    created = samples["crib_operations_total"][(("code", "OK"), ("operation", "RunPodSandbox"))]
    assert created == PODS
    adds = samples["crib_cni_operations_total"][(("operation", "ADD"), ("result", "success"))]
    assert adds == PODS
    assert samples["crib_cni_operation_latency_seconds_count"][(("operation", "ADD"),)] == PODS
    assert samples["crib_image_pulls_success_total"][()] >= 1
    assert samples["crib_image_pulls_bytes_total"][()] > 0
