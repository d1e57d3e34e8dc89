"""The Prometheus endpoint of the real daemon: off by default, on at metrics.address,
text that prometheus_client's parser accepts, counters that move with the calls made."""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cri.api import api_pb2 as pb
from cri.config import Config
from tests.e2e.daemon import CribDaemon, running_crib
from tests.e2e.pods import free_port

pytestmark = pytest.mark.e2e

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture(scope="module")
def crib() -> Iterator[CribDaemon]:
    with running_crib(metrics={"address": f"127.0.0.1:{free_port()}"}) as daemon:
        yield daemon


def address(crib: CribDaemon) -> str:
    return str(crib.config["metrics"]["address"])


def scrape(crib: CribDaemon) -> Samples:
    with urllib.request.urlopen(f"http://{address(crib)}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_off_by_default() -> None:
    assert Config().metrics.address == ""


def test_counters_move_with_calls(crib: CribDaemon) -> None:
    before = scrape(crib)
    for _ in range(3):
        crib.runtime().Version(pb.VersionRequest())
    with pytest.raises(grpc.RpcError):
        crib.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id="f" * 64))
    after = scrape(crib)
    ok = {"operation": "Version", "code": "OK"}
    assert (
        value(after, "crib_operations_total", **ok) - value(before, "crib_operations_total", **ok)
        == 3
    )
    missing = {"operation": "ContainerStatus", "code": "NOT_FOUND"}
    assert (
        value(after, "crib_operations_errors_total", **missing)
        == value(before, "crib_operations_errors_total", **missing) + 1
    )
    count = "crib_operations_latency_seconds_count"
    assert value(after, count, operation="Version") - value(before, count, operation="Version") == 3
    assert value(after, "crib_operations_errors_total", operation="Version", code="OK") == 0


def test_every_family_is_there(crib: CribDaemon) -> None:
    samples = scrape(crib)
    for name in (
        "crib_image_pulls_success_total",
        "crib_image_pulls_failure_total",
        "crib_image_pulls_bytes_total",
        "crib_image_pulls_in_flight",
        "crib_containers_oom_total",
        "crib_containers_events_dropped_total",
        "crib_pods_running",
        "crib_containers_running",
        "crib_conmon_processes_alive",
        "crib_pause_processes_alive",
    ):
        assert name in samples, name
    assert value(samples, "crib_pods_running") == 0


def test_other_paths_and_methods(crib: CribDaemon) -> None:
    host, port = address(crib).rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().status == 404
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/metrics", body=b"")
    assert conn.getresponse().status == 405
    conn.close()


def test_taken_address_stops_start_up(crib: CribDaemon) -> None:
    second = CribDaemon(metrics={"address": address(crib)})
    try:
        with pytest.raises(RuntimeError, match=r"metrics\.address"):
            second.start(timeout_s=20)
    finally:
        second.cleanup()
