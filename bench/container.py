"""Container benchmark: CreateContainer, StartContainer, ExecSync, StopContainer and
RemoveContainer p50/p90 for crib's runtime handlers (runc, and crib when crib-runtime can
run a container) beside containerd (Debian's 1.6 with its CRI plugin and runc), measured in
the same run with the same gRPC client; then memory: host PSS per running pod with one
container (crib: conmon x2 + pause; containerd: shim + pause; the container's own process
is the same for both and left out), and the daemon's RSS with 50 such pods.

Both runtimes pull the same busybox image (built by tests/imagebuild.py) from a throwaway
docker-registry on 127.0.0.1, and get their own sockets, roots, bridge network and cgroup
parent under /tmp/cctr-bench-*; everything is removed at the end.

    sudo .venv/bin/python bench/container.py [--iterations 30] [--pods 50]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import pod as pod_bench  # noqa: E402
from cri.api import api_pb2 as pb  # noqa: E402
from tests import imagebuild  # noqa: E402
from tests.registry import running_registry  # noqa: E402

SLEEP = ["sleep", "100000"]


class Crib(pod_bench.Crib):  # type: ignore[misc]
    """crib with one runtime handler as the default, pulling from the bench registry."""

    def __init__(self, handler: str, registry_host: str, *args: Any) -> None:
        super().__init__(*args)
        self.handler = handler
        self.name = f"crib/{handler}"
        self.registry_host = registry_host

    def start(self) -> None:
        config = os.path.join(self.base, "crib.yaml")
        with open(config, "w") as f:
            json.dump(
                {
                    "listen": self.socket,
                    "root": os.path.join(self.base, "root"),
                    "state": os.path.join(self.base, "state"),
                    "log_level": "info",
                    "default_runtime": self.handler,
                    "cni": {"conf_dir": self.conf_dir, "bin_dirs": [pod_bench.CNI_BIN_DIR]},
                    "registries": {self.registry_host: {"insecure": True}},
                },
                f,
            )
        log = open(os.path.join(self.base, "crib.log"), "ab")  # noqa: SIM115 - the child's
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cri", "serve", "--config", config],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready()

    def monitor_pids(self) -> list[int]:
        """conmon processes (the pods' and the containers')."""
        return [pid for pid in pod_bench.processes_naming(self.base) if _comm(pid) == "conmon"]


class Containerd(pod_bench.Containerd):  # type: ignore[misc]
    """containerd 1.6 + runc, with the bench registry as a plain-HTTP mirror of itself."""

    def __init__(self, registry_host: str, *args: Any) -> None:
        super().__init__(*args)
        self.registry_host = registry_host

    def start(self) -> None:
        root, state = os.path.join(self.base, "root"), os.path.join(self.base, "state")
        config = os.path.join(self.base, "containerd.toml")
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        with open(config, "w") as f:
            f.write(
                f"""version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{self.socket}"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{root}/opt"
  [{cri}]
    sandbox_image = "{pod_bench.PAUSE_IMAGE}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    enable_selinux = false
    disable_hugetlb_controller = true
    tolerate_missing_hugetlb_controller = true
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [{cri}.containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [{cri}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [{cri}.containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "{state}/runc"
          SystemdCgroup = false
    [{cri}.cni]
      bin_dir = "{pod_bench.CNI_BIN_DIR}"
      conf_dir = "{self.conf_dir}"
      max_conf_num = 1
{self.registry_section()}"""
            )
        log = open(os.path.join(self.base, "containerd.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["/usr/bin/containerd", "--config", config],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready()
        archive = os.path.join(self.base, "pause.tar")
        pod_bench.write_pause_image(archive, shutil.which("catatonit") or "/usr/bin/catatonit")
        pod_bench.run("ctr", "--address", self.socket, "-n", "k8s.io", "images", "import", archive)

    def registry_section(self) -> str:
        host = self.registry_host
        return (
            '    [plugins."io.containerd.grpc.v1.cri".registry.mirrors]\n'
            f'      [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]\n'
            f'        endpoint = ["http://{host}"]\n'
        )

    def monitor_pids(self) -> list[int]:
        """containerd-shim-runc-v2 processes of this containerd."""
        return [
            pid
            for pid in pod_bench.processes_naming(self.base)
            if _comm(pid).startswith("containerd-shim")
        ]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process (smaps_rollup), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_pids(cgroup_path: str) -> set[int]:
    """Every pid in the cgroup tree `cgroup_path` (v2, or v1's memory hierarchy)."""
    found: set[int] = set()
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    hierarchy = "/sys/fs/cgroup" if unified else "/sys/fs/cgroup/memory"
    top = os.path.join(hierarchy, cgroup_path.lstrip("/"))
    for dirpath, _, files in os.walk(top):
        if "cgroup.procs" in files:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                found.update(int(line) for line in f if line.strip())
    return found


# -- measurement ---------------------------------------------------------------------------


def pod_config(runtime: Any, name: str) -> pb.PodSandboxConfig:
    config = pod_bench.pod_config(runtime, name)
    config.metadata.namespace = "cctr-bench"
    return config


def container_config(image: str, name: str) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=SLEEP,
        log_path=f"{name}.log",
        labels={"bench": "container"},
    )


def measure_ops(runtime: Any, image: str, iterations: int) -> dict[str, list[float]]:
    stub = runtime.stub()
    images = pod_bench.pb_grpc.ImageServiceStub(runtime.channel)
    images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300)
    pod = pod_config(runtime, "ops")
    sandbox_id = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=240).pod_sandbox_id
    samples: dict[str, list[float]] = {
        op: []
        for op in (
            "CreateContainer",
            "StartContainer",
            "ExecSync",
            "StopContainer",
            "RemoveContainer",
        )
    }
    for i in range(iterations + 1):  # the first round warms caches and is dropped
        config = container_config(image, f"c{i}")
        clock = time.perf_counter()
        container_id = stub.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=pod),
            timeout=240,
        ).container_id
        samples["CreateContainer"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        stub.StartContainer(pb.StartContainerRequest(container_id=container_id))
        samples["StartContainer"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        result = stub.ExecSync(
            pb.ExecSyncRequest(container_id=container_id, cmd=["true"], timeout=30)
        )
        samples["ExecSync"].append(time.perf_counter() - clock)
        assert result.exit_code == 0, result
        clock = time.perf_counter()
        stub.StopContainer(pb.StopContainerRequest(container_id=container_id, timeout=10))
        samples["StopContainer"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        stub.RemoveContainer(pb.RemoveContainerRequest(container_id=container_id))
        samples["RemoveContainer"].append(time.perf_counter() - clock)
        if i == 0:
            for values in samples.values():
                values.clear()
    runtime.remove_all()
    return samples


def measure_memory(runtime: Any, image: str, pods: int) -> dict[str, float]:
    """Per-pod monitor+pause PSS and the daemon's RSS with `pods` pods of one container."""
    stub = runtime.stub()
    for i in range(pods):
        pod = pod_config(runtime, f"mem-{i}")
        sandbox_id = stub.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod), timeout=240
        ).pod_sandbox_id
        container_id = stub.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=container_config(image, "c"), sandbox_config=pod
            ),
            timeout=240,
        ).container_id
        stub.StartContainer(pb.StartContainerRequest(container_id=container_id))
    time.sleep(2)  # let lazily-touched pages settle
    # The containers' own processes (sleep) are the same for both runtimes: left out.
    container_pids = {pid for pid in cgroup_pids(runtime.cgroup_parent) if _comm(pid) == "sleep"}
    in_pods = cgroup_pids(runtime.cgroup_parent) - container_pids  # the pauses
    monitors = set(runtime.monitor_pids())
    per_pod = sum(pss_bytes(pid) for pid in in_pods | monitors) / pods
    assert runtime.process is not None
    daemon_rss = rss_bytes(runtime.process.pid)
    runtime.remove_all()
    return {
        "per_pod_pss": per_pod,
        "daemon_rss": daemon_rss,
        "pause_and_monitor_processes": len(in_pods | monitors),
    }


def bench_image() -> imagebuild.Image:
    """busybox from tests/imagebuild.py, its hard links carrying the binary's mode: their
    default 0644 is applied to the shared inode by containerd's unpacker (not by crib's),
    which would leave busybox unexecutable there."""
    entries = [
        dataclasses.replace(e, mode=0o755) if e.kind == "hardlink" else e
        for e in imagebuild.busybox_entries()
    ]
    return imagebuild.Image(
        [imagebuild.Layer(entries)],
        config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    )


def percentile(samples: list[float], fraction: float) -> float:
    return float(pod_bench.percentile(samples, fraction))


def crib_handler_works(handler: str) -> bool:
    """Whether the handler's binary can run a container at all (crib-runtime may be a stub)."""
    if handler == "runc":
        return os.access("/usr/sbin/runc", os.X_OK)
    binary = REPO / ".venv" / "bin" / "crib-runtime"
    if not binary.exists():
        return False
    done = subprocess.run([str(binary), "features"], capture_output=True, check=False)
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    if not pod_bench.preflight("bench/container.py"):
        return 1
    results: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    cgroup_parent = f"/cctr-bench-{secrets.token_hex(3)}"
    with running_registry() as registry:
        imagebuild.push_image(registry, "cctr/bench", "1", bench_image())
        image = f"{registry.host}/cctr/bench:1"
        runtimes: list[Callable[[str, str], Any]] = []
        for handler in ("crib", "runc"):
            if crib_handler_works(handler):
                runtimes.append(
                    lambda base, subnet, h=handler: Crib(
                        h, registry.host, base, subnet, cgroup_parent
                    )
                )
            else:
                skipped.append(f"crib/{handler}")
        runtimes.append(lambda base, subnet: Containerd(registry.host, base, subnet, cgroup_parent))
        try:
            for index, make in enumerate(runtimes):
                with pod_bench.bench_dir() as base:
                    runtime = make(base, f"10.124.{240 + index}")
                    try:
                        runtime.start()
                        ops = measure_ops(runtime, image, args.iterations)
                        memory = measure_memory(runtime, image, args.pods)
                        results[runtime.name] = {**ops, **memory}
                    finally:
                        runtime.stop()
                        for pid in pod_bench.processes_naming(base):
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                pod_bench.remove_cgroup_tree(cgroup_parent)
        finally:
            pod_bench.remove_cgroup_tree(cgroup_parent)
    report(results, skipped, args.iterations, args.pods)
    return 0


def report(
    results: dict[str, dict[str, Any]], skipped: list[str], iterations: int, pods: int
) -> None:
    peer = results["containerd"]
    print(f"containers (busybox sleep), {iterations} sequential rounds (ms)")
    for name, result in results.items():
        if name == "containerd":
            continue
        header = ("operation", f"{name} p50", "p90", "containerd p50", "p90", "ratio p50")
        print("{:<18} {:>12} {:>7} {:>15} {:>7} {:>10}".format(*header))
        for op in (
            "CreateContainer",
            "StartContainer",
            "ExecSync",
            "StopContainer",
            "RemoveContainer",
        ):
            c50, c90 = percentile(result[op], 0.5) * 1e3, percentile(result[op], 0.9) * 1e3
            p50, p90 = percentile(peer[op], 0.5) * 1e3, percentile(peer[op], 0.9) * 1e3
            print(f"{op:<18} {c50:>12.1f} {c90:>7.1f} {p50:>15.1f} {p90:>7.1f} {c50 / p50:>10.2f}")
        # crib runs `runtime create` at CreateContainer (as CRI-O), containerd at Start:
        # the pair is the comparable unit of work.
        pair = [
            a + b for a, b in zip(result["CreateContainer"], result["StartContainer"], strict=True)
        ]
        peer_pair = [
            a + b for a, b in zip(peer["CreateContainer"], peer["StartContainer"], strict=True)
        ]
        c50, p50 = percentile(pair, 0.5) * 1e3, percentile(peer_pair, 0.5) * 1e3
        c90, p90 = percentile(pair, 0.9) * 1e3, percentile(peer_pair, 0.9) * 1e3
        print(
            f"{'Create+Start':<18} {c50:>12.1f} {c90:>7.1f} {p50:>15.1f} {p90:>7.1f}"
            f" {c50 / p50:>10.2f}"
        )
        mib = 1 << 20
        ratio = result["per_pod_pss"] / peer["per_pod_pss"]
        print(
            f"memory with {pods} pods of one container: per-pod PSS (monitors + pause)"
            f" {result['per_pod_pss'] / mib:.2f} MiB vs containerd's shim + pause"
            f" {peer['per_pod_pss'] / mib:.2f} MiB (ratio {ratio:.2f});"
            f" daemon RSS {result['daemon_rss'] / mib:.1f} MiB"
            f" (containerd {peer['daemon_rss'] / mib:.1f} MiB)"
        )
    for name in skipped:
        print(f"{name}: not measured (the handler cannot run containers on this build)")


if __name__ == "__main__":
    sys.exit(main())
