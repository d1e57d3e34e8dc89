"""Stats benchmark: the cost per container of ListContainerStats (and per pod of
ListPodSandboxStats, ListPodSandboxMetrics) with 50 pods of one running container, for
crib's runtime handlers beside containerd (Debian's 1.6, CRI plugin + runc) measured in the
same run with the same gRPC client.

The issue's budget: a stats call for 50 containers costs at most a few milliseconds per
container. The first call of each kind is left out (it starts the writable-layer
measurements and fills caches); the rest are timed back to back.

    sudo .venv/bin/python bench/stats.py [--pods 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import secrets
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import container as container_bench  # noqa: E402
from cri.api import api_pb2 as pb  # noqa: E402
from tests import imagebuild  # noqa: E402
from tests.registry import running_registry  # noqa: E402

pod_bench = container_bench.pod_bench

CALLS: dict[str, tuple[str, Callable[[], Any]]] = {
    "ListContainerStats": ("container", lambda: pb.ListContainerStatsRequest()),
    "ListPodSandboxStats": ("pod", lambda: pb.ListPodSandboxStatsRequest()),
    "ListPodSandboxMetrics": ("pod", lambda: pb.ListPodSandboxMetricsRequest()),
}


def make_pods(runtime: Any, image: str, pods: int) -> None:
    stub = runtime.stub()
    for index in range(pods):
        config = container_bench.pod_config(runtime, f"stats-{index}")
        sandbox_id = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
        container_id = stub.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id,
                config=container_bench.container_config(image, "app"),
                sandbox_config=config,
            )
        ).container_id
        stub.StartContainer(pb.StartContainerRequest(container_id=container_id))


def measure(runtime: Any, rounds: int, pods: int) -> dict[str, list[float] | None]:
    """Seconds per call of each RPC (None: the runtime does not implement it)."""
    stub = runtime.stub()
    results: dict[str, list[float] | None] = {}
    for rpc, (_, request) in CALLS.items():
        call = getattr(stub, rpc)
        try:
            first = call(request(), timeout=60)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                results[rpc] = None
                continue
            raise
        count = len(getattr(first, "stats", None) or getattr(first, "pod_metrics", []))
        if count < pods:
            raise RuntimeError(f"{runtime.name} {rpc}: {count} items, want {pods}")
        time.sleep(1.0)  # a CPU-rate window
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            call(request(), timeout=60)
            samples.append(time.perf_counter() - started)
        results[rpc] = samples
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if not pod_bench.preflight("bench/stats.py"):
        return 1
    results: dict[str, dict[str, list[float] | None]] = {}
    cgroup_parent = f"/cobs-bench-{secrets.token_hex(3)}"
    with running_registry() as registry:
        imagebuild.push_image(registry, "cobs/bench", "1", container_bench.bench_image())
        image = f"{registry.host}/cobs/bench:1"
        runtimes: list[Callable[[str, str], Any]] = [
            lambda base, subnet, h=handler: container_bench.Crib(
                h, registry.host, base, subnet, cgroup_parent
            )
            for handler in ("crib", "runc")
            if container_bench.crib_handler_works(handler)
        ]
        runtimes.append(
            lambda base, subnet: container_bench.Containerd(
                registry.host, base, subnet, cgroup_parent
            )
        )
        try:
            for index, make in enumerate(runtimes):
                with pod_bench.bench_dir() as base:
                    runtime = make(base, f"10.126.{240 + index}")
                    try:
                        runtime.start()
                        runtime.stub()  # opens runtime.channel
                        images = pod_bench.pb_grpc.ImageServiceStub(runtime.channel)
                        images.PullImage(
                            pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300
                        )
                        make_pods(runtime, image, args.pods)
                        results[runtime.name] = measure(runtime, args.rounds, args.pods)
                    finally:
                        runtime.stop()
                        for pid in pod_bench.processes_naming(base):
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                pod_bench.remove_cgroup_tree(cgroup_parent)
        finally:
            pod_bench.remove_cgroup_tree(cgroup_parent)
    report(results, args.pods, args.rounds)
    return 0


def report(results: dict[str, dict[str, list[float] | None]], pods: int, rounds: int) -> None:
    peer = results.get("containerd", {})
    print(f"stats with {pods} pods of one running container, {rounds} calls each (ms)")
    header = ("call", "runtime", "p50", "p90", "per item p50", "containerd p50", "ratio")
    print("{:<22} {:<12} {:>8} {:>8} {:>13} {:>15} {:>7}".format(*header))
    for rpc, (unit, _) in CALLS.items():
        for name, result in results.items():
            if name == "containerd":
                continue
            samples = result.get(rpc)
            if samples is None:
                continue
            p50 = container_bench.percentile(samples, 0.5) * 1e3
            p90 = container_bench.percentile(samples, 0.9) * 1e3
            theirs = peer.get(rpc)
            peer_p50 = container_bench.percentile(theirs, 0.5) * 1e3 if theirs else None
            ratio = f"{p50 / peer_p50:.2f}" if peer_p50 else "-"
            peer_text = f"{peer_p50:.1f}" if peer_p50 is not None else "unimplemented"
            print(
                f"{rpc:<22} {name:<12} {p50:>8.1f} {p90:>8.1f} {p50 / pods:>9.2f}/{unit:<3}"
                f" {peer_text:>15} {ratio:>7}"
            )


if __name__ == "__main__":
    sys.exit(main())
