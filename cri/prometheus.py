"""crib's Prometheus endpoint (`metrics.address`, off by default): GET /metrics.

What it serves (text exposition format 0.0.4, prometheus_client), names after CRI-O's
`crio_*` collectors with crib's prefix:

    crib_operations_total{operation,code}            every CRI call (cri.edge observer)
    crib_operations_errors_total{operation,code}     the calls that did not end OK
    crib_operations_latency_seconds{operation}       histogram of call durations
    crib_image_pulls_success_total / _failure_total / _bytes_total, crib_image_pulls_in_flight
    crib_containers_oom_total                        containers that exited OOMKilled
    crib_containers_events_dropped_total             GetContainerEvents events lost
    crib_pods_running, crib_containers_running       ready pods, running containers
    crib_cni_operations_total{operation,result}, crib_cni_operation_latency_seconds{operation}
    crib_conmon_processes_alive, crib_pause_processes_alive

Counters of calls are updated as they happen; the rest is read from the daemon's state
when scraped. The HTTP side is a few lines on the daemon's event loop (one GET, answer,
close), so scrapes read state on the same thread that changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cri.containers.records import ContainerState
from cri.pods.records import SandboxState
from sandbox.monitor import proc

if TYPE_CHECKING:
    from cri.service import CriService

log = logging.getLogger("crib.metrics")

PREFIX = "crib"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 240,
)  # fmt: skip
REQUEST_TIMEOUT_S = 10.0
MAX_REQUEST_BYTES = 8192


class RuntimeMetrics:
    """The registry of one daemon and the metrics updated as things happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter(
            f"{PREFIX}_operations_total",
            "CRI calls by RPC and gRPC status code.",
            ["operation", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{PREFIX}_operations_errors_total",
            "CRI calls that ended with a status other than OK.",
            ["operation", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_operations_latency_seconds",
            "How long CRI calls took, by RPC.",
            ["operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.cni_operations = Counter(
            f"{PREFIX}_cni_operations_total",
            "Pod network attach (ADD) and detach (DEL) operations by result.",
            ["operation", "result"],
            registry=self.registry,
        )
        self.cni_latency = Histogram(
            f"{PREFIX}_cni_operation_latency_seconds",
            "How long attaching (ADD) and detaching (DEL) a pod's network took.",
            ["operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.containers_oom = Counter(
            f"{PREFIX}_containers_oom",
            "Containers that exited because the OOM killer killed them.",
            registry=self.registry,
        )

    def observe_rpc(self, rpc: str, code: str, elapsed_s: float) -> None:
        """cri.edge observer: one finished call."""
        self.operations.labels(rpc, code).inc()
        if code != "OK":
            self.errors.labels(rpc, code).inc()
        self.latency.labels(rpc).observe(elapsed_s)

    def observe_cni(self, operation: str, elapsed_s: float, ok: bool) -> None:
        """CniManager observer: one pod attach or detach."""
        self.cni_operations.labels(operation, "success" if ok else "failure").inc()
        self.cni_latency.labels(operation).observe(elapsed_s)

    def watch(self, service: CriService) -> None:
        """Hook into the service: CNI timings, OOM exits, state read at scrape time."""
        service.cni.observers.append(self.observe_cni)
        store = service.containers.store

        def on_container_event(container_id: str, event: str) -> None:
            if event != "stopped":
                return
            record = store.get(container_id)
            if record is not None and record.status.reason == "OOMKilled":
                self.containers_oom.inc()

        service.containers.listeners.append(on_container_event)
        self.registry.register(StateCollector(service))

    def exposition(self) -> bytes:
        """The current metrics as Prometheus text."""
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Metrics read from the daemon's state at scrape time."""

    def __init__(self, service: CriService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Yield the scrape-time metrics."""
        service = self.service
        pulls = service.images.metrics
        yield CounterMetricFamily(
            f"{PREFIX}_image_pulls_success",
            "Image pulls that succeeded.",
            value=pulls.pulls_succeeded_total,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_image_pulls_failure",
            "Image pulls that failed.",
            value=pulls.pulls_failed_total,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_image_pulls_bytes",
            "Bytes of image layers downloaded.",
            value=pulls.bytes_downloaded_total,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_image_pulls_in_flight",
            "Image pulls in progress.",
            value=pulls.pulls_in_flight,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_containers_events_dropped",
            "Container events a GetContainerEvents subscriber lost by falling behind.",
            value=service.events.dropped_total,
        )
        sandboxes = service.sandboxes.list()
        containers = service.containers.store.list()
        ready = [s for s in sandboxes if s.status.state is SandboxState.READY]
        running = [c for c in containers if c.status.state is ContainerState.RUNNING]
        yield GaugeMetricFamily(
            f"{PREFIX}_pods_running", "Pod sandboxes that are ready.", value=len(ready)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_containers_running", "Containers that are running.", value=len(running)
        )
        pauses = [s.status.pause for s in sandboxes if s.status.pause is not None]
        pause_alive = sum(1 for p in pauses if p.is_alive())
        conmon_alive = sum(
            1 for c in containers if c.status.conmon is not None and c.status.conmon.is_alive()
        ) + sum(1 for p in pauses if p.conmon_pid > 0 and _runs(p.conmon_pid))
        yield GaugeMetricFamily(
            f"{PREFIX}_conmon_processes_alive",
            "conmon monitors alive (containers' and pause processes').",
            value=conmon_alive,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pause_processes_alive",
            "Pause processes alive (one per pod sandbox that holds namespaces).",
            value=pause_alive,
        )


def _runs(pid: int) -> bool:
    return proc.state(pid) not in (None, "Z", "X")


class MetricsServer:
    """GET /metrics over plain HTTP/1.1 on `address` (host:port), one request per
    connection."""

    def __init__(self, metrics: RuntimeMetrics, address: str) -> None:
        self.metrics = metrics
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._server: asyncio.Server | None = None

    @property
    def bound_address(self) -> str:
        """host:port actually bound (after start)."""
        if self._server is None or not self._server.sockets:
            return ""
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def start(self) -> None:
        """Listen (raises OSError when the address is taken)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("serving Prometheus metrics on http://%s/metrics", self.bound_address)

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            status, body, content_type = "400 Bad Request", b"bad request\n", "text/plain"
        elif parts[0] not in ("GET", "HEAD"):
            status, body, content_type = "405 Method Not Allowed", b"use GET\n", "text/plain"
        elif parts[1].split("?", 1)[0] not in ("/metrics", "/metrics/"):
            status, body, content_type = "404 Not Found", b"try /metrics\n", "text/plain"
        else:
            status, body, content_type = "200 OK", self.metrics.exposition(), CONTENT_TYPE
        response = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        if parts and parts[0] != "HEAD":
            response += body
        try:
            writer.write(response)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
