"""Streaming benchmark: the round trip of `exec echo hi` (Exec RPC, SPDY upgrade, streams,
the process, the status; p50/p90) and port-forward throughput (MiB/s, one forwarded
connection echoing a payload through busybox `nc -e cat` in the pod) for crib's runtime
handlers beside containerd (Debian's 1.6 with its CRI plugin and runc), measured in the
same run.

Both runtimes are driven by the same clients: gRPC for the RPCs and cri/streaming/client.py
for the sessions (it behaves as client-go does), so the client's own cost is the same on
both sides, and the runtimes run side by side, measured in interleaved rounds, so a busy
moment of the machine costs them alike. Runtimes, registry and networks are set up as in
bench/container.py (sockets, roots and bridges under /tmp/cpod-bench-*, cgroup parent
/cstm-bench-*); everything is removed at the end.

    sudo .venv/bin/python bench/stream.py [--iterations 50] [--mib 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import secrets
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import container as container_bench  # noqa: E402
from cri.api import api_pb2 as pb  # noqa: E402
from cri.streaming.client import PortForwarder, RemoteCommand  # noqa: E402
from tests import imagebuild  # noqa: E402
from tests.registry import running_registry  # noqa: E402

ECHO_PORT = 7777
CHUNK_BYTES = 256 * 1024


pod_bench = container_bench.pod_bench


def start_pod(runtime: Any, image: str, name: str, command: list[str]) -> tuple[str, str]:
    """A pod with one running container; (sandbox id, container id)."""
    stub = runtime.stub()
    pod = container_bench.pod_config(runtime, name)
    sandbox_id = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=240).pod_sandbox_id
    config = container_bench.container_config(image, name)
    config.command[:] = command
    container_id = stub.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=pod),
        timeout=240,
    ).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=container_id))
    return sandbox_id, container_id


async def exec_round_trip(stub: Any, container_id: str) -> float:
    """Seconds from the Exec RPC to the session's status, for `echo hi`."""
    clock = time.perf_counter()
    request = pb.ExecRequest(
        container_id=container_id, cmd=["echo", "hi"], stdout=True, stderr=True
    )
    url = (await asyncio.to_thread(stub.Exec, request)).url
    session = await RemoteCommand.spdy(url)
    result = await session.finish()
    elapsed = time.perf_counter() - clock
    assert result.stdout == b"hi\n", result
    assert result.exit_code == 0, result
    return elapsed


async def forward_throughput(stub: Any, sandbox_id: str, payload: bytes) -> float:
    """MiB/s of `payload` sent through one forwarded connection and echoed back."""
    url = stub.PortForward(pb.PortForwardRequest(pod_sandbox_id=sandbox_id)).url
    forwarder = await PortForwarder.spdy(url)
    try:
        clock = time.perf_counter()
        connection = await forwarder.connect(ECHO_PORT)

        async def send() -> None:
            view = memoryview(payload)
            for offset in range(0, len(payload), CHUNK_BYTES):
                await connection.write(bytes(view[offset : offset + CHUNK_BYTES]))
            await connection.close_write()

        sender = asyncio.ensure_future(send())
        digest = hashlib.sha256()
        received = 0
        while data := await connection.read(CHUNK_BYTES):
            digest.update(data)
            received += len(data)
        await sender
        elapsed = time.perf_counter() - clock
        connection.reset()
    finally:
        await forwarder.close()
    assert received == len(payload), (received, len(payload))
    assert digest.digest() == hashlib.sha256(payload).digest()
    return len(payload) / (1 << 20) / elapsed


@dataclasses.dataclass
class Target:
    """A started runtime with its exec container and its echo pod."""

    name: str
    stub: Any
    container_id: str
    echo_sandbox_id: str


def prepare(runtime: Any, image: str) -> Target:
    stub = runtime.stub()
    images = pod_bench.pb_grpc.ImageServiceStub(runtime.channel)
    images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300)
    _, container_id = start_pod(runtime, image, "exec", ["sleep", "100000"])
    echo_sandbox_id, _ = start_pod(
        runtime, image, "echo", ["nc", "-ll", "-p", str(ECHO_PORT), "-e", "cat"]
    )
    return Target(runtime.name, stub, container_id, echo_sandbox_id)


def rotated(targets: list[Target], index: int) -> list[Target]:
    """Each round in another order, so no runtime always goes first."""
    shift = index % len(targets)
    return targets[shift:] + targets[:shift]


async def measure(
    targets: list[Target], iterations: int, mib: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Interleaved: every round measures every runtime, so a busy moment of the machine
    costs them alike."""
    results: dict[str, dict[str, list[float]]] = {
        t.name: {"exec": [], "forward": []} for t in targets
    }
    for i in range(iterations + 1):  # the first round warms caches and is dropped
        for target in rotated(targets, i):
            elapsed = await exec_round_trip(target.stub, target.container_id)
            if i:
                results[target.name]["exec"].append(elapsed)
    payload = os.urandom(mib << 20)
    for target in targets:  # warm-up
        await forward_throughput(target.stub, target.echo_sandbox_id, payload[: 8 << 20])
    for i in range(rounds):
        for target in rotated(targets, i):
            rate = await forward_throughput(target.stub, target.echo_sandbox_id, payload)
            results[target.name]["forward"].append(rate)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not pod_bench.preflight("bench/stream.py"):
        return 1
    skipped: list[str] = []
    cgroup_parent = f"/cstm-bench-{secrets.token_hex(3)}"
    with running_registry() as registry, contextlib.ExitStack() as stack:
        stack.callback(pod_bench.remove_cgroup_tree, cgroup_parent)
        imagebuild.push_image(registry, "cstm/bench", "1", container_bench.bench_image())
        image = f"{registry.host}/cstm/bench:1"
        makers: list[Callable[[str, str], Any]] = []
        for handler in ("crib", "runc"):
            if container_bench.crib_handler_works(handler):
                makers.append(
                    lambda base, subnet, h=handler: container_bench.Crib(
                        h, registry.host, base, subnet, cgroup_parent
                    )
                )
            else:
                skipped.append(f"crib/{handler}")
        makers.append(
            lambda base, subnet: container_bench.Containerd(
                registry.host, base, subnet, cgroup_parent
            )
        )
        targets = []
        for index, make in enumerate(makers):
            base = stack.enter_context(pod_bench.bench_dir())
            runtime = make(base, f"10.125.{240 + index}")
            stack.callback(_stop, runtime, base)
            runtime.start()
            targets.append(prepare(runtime, image))
        results = asyncio.run(measure(targets, args.iterations, args.mib, args.rounds))
    report(results, skipped, args)
    return 0


def _stop(runtime: Any, base: str) -> None:
    runtime.stop()
    for pid in pod_bench.processes_naming(base):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def report(results: dict[str, dict[str, list[float]]], skipped: list[str], args: Any) -> None:
    peer = results["containerd"]
    p50 = container_bench.percentile
    peer_exec = p50(peer["exec"], 0.5) * 1e3
    peer_rate = sorted(peer["forward"])[len(peer["forward"]) // 2]
    print(
        f"streaming: exec `echo hi` round trip, {args.iterations} interleaved rounds (ms);"
        f" port-forward echo of {args.mib} MiB on one connection, median of {args.rounds} (MiB/s)"
    )
    header = ("runtime", "exec p50", "p90", "vs containerd", "forward MiB/s", "vs containerd")
    print("{:<14} {:>9} {:>7} {:>14} {:>14} {:>14}".format(*header))
    for name, result in results.items():
        e50, e90 = p50(result["exec"], 0.5) * 1e3, p50(result["exec"], 0.9) * 1e3
        rate = sorted(result["forward"])[len(result["forward"]) // 2]
        print(
            f"{name:<14} {e50:>9.1f} {e90:>7.1f} {e50 / peer_exec:>14.2f}"
            f" {rate:>14.1f} {rate / peer_rate:>14.2f}"
        )
    print("targets: exec p50 ratio <= 1.00, forward ratio >= 0.80")
    for name in skipped:
        print(f"{name}: not measured (the handler cannot run containers on this build)")


if __name__ == "__main__":
    sys.exit(main())
