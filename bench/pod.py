"""Pod sandbox benchmark: RunPodSandbox, StopPodSandbox, RemovePodSandbox p50/p90 with
networking, and 20 pods started concurrently: crib vs containerd (Debian's 1.6 with its
CRI plugin), measured in the same run with the same gRPC client.

Both runtimes get what this script sets up, on their own sockets and roots under
/tmp/cpod-bench-*: runc as the OCI runtime, a bridge network of their own (bridge,
host-local, portmap; no masquerade, no gateway), the same cgroup parent. containerd's
pause image is built here from the host's static catatonit and imported with `ctr`, so
nothing is pulled. Everything is removed at the end.

    sudo .venv/bin/python bench/pod.py [--iterations 30] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from cri.api import api_pb2 as pb
from cri.api import api_pb2_grpc as pb_grpc

REPO = pathlib.Path(__file__).resolve().parents[1]
PAUSE_IMAGE = "crib.local/bench-pause:1"
CNI_BIN_DIR = "/usr/lib/cni"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


# -- the two runtimes ----------------------------------------------------------------------


class Runtime:
    """A CRI endpoint under test: started, measured, stopped."""

    name = ""

    def __init__(self, base: str, subnet_prefix: str, cgroup_parent: str) -> None:
        self.base = base
        self.suffix = secrets.token_hex(3)
        self.bridge = f"cpodb{self.suffix}"
        self.network = f"cpod-bench-{self.suffix}"
        self.subnet_prefix = subnet_prefix
        self.cgroup_parent = cgroup_parent
        self.conf_dir = os.path.join(base, "net.d")
        self.socket = os.path.join(base, "cri.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        os.makedirs(self.conf_dir)
        with open(os.path.join(self.conf_dir, "10-bench.conflist"), "w") as f:
            json.dump(self.conflist(), f)

    def conflist(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": self.network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": False,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": f"{self.subnet_prefix}.0/24"}]],
                        "dataDir": os.path.join(self.base, "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}")
            if os.path.exists(self.socket):
                try:
                    self.stub().Version(pb.VersionRequest(), timeout=2)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout_s} s")

    def stub(self) -> pb_grpc.RuntimeServiceStub:
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        return pb_grpc.RuntimeServiceStub(self.channel)

    def remove_all(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for item in self.stub().ListPodSandbox(pb.ListPodSandboxRequest()).items:
                with contextlib.suppress(grpc.RpcError):
                    self.stub().StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=item.id))
                    self.stub().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=item.id))

    def stop(self) -> None:
        self.remove_all()
        if self.channel is not None:
            self.channel.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        run("ip", "link", "del", self.bridge, check=False)


class Crib(Runtime):
    name = "crib"

    def start(self) -> None:
        config = os.path.join(self.base, "crib.yaml")
        with open(config, "w") as f:
            json.dump(
                {
                    "listen": self.socket,
                    "root": os.path.join(self.base, "root"),
                    "state": os.path.join(self.base, "state"),
                    "log_level": "info",
                    "default_runtime": "runc",
                    "cni": {"conf_dir": self.conf_dir, "bin_dirs": [CNI_BIN_DIR]},
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


class Containerd(Runtime):
    name = "containerd"

    def start(self) -> None:
        root, state = os.path.join(self.base, "root"), os.path.join(self.base, "state")
        config = os.path.join(self.base, "containerd.toml")
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
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    enable_selinux = false
    disable_hugetlb_controller = true
    tolerate_missing_hugetlb_controller = true
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "{state}/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN_DIR}"
      conf_dir = "{self.conf_dir}"
      max_conf_num = 1
"""
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
        write_pause_image(archive, shutil.which("catatonit") or "/usr/bin/catatonit")
        run("ctr", "--address", self.socket, "-n", "k8s.io", "images", "import", archive)

    def stop(self) -> None:
        super().stop()
        # the shims of removed pods exit by themselves; kill what is left, by pid
        for pid in processes_naming(self.base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def write_pause_image(path: str, binary: str) -> None:
    """A docker-archive image holding only /pause (a copy of the static catatonit)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(binary, arcname="pause")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause", "-P"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        [{"Config": "config.json", "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("layer.tar", layer_bytes),
            ("config.json", config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def processes_naming(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


# -- measurement ---------------------------------------------------------------------------


def pod_config(runtime: Runtime, name: str) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(
            name=name, namespace="cpod-bench", uid=f"uid-{secrets.token_hex(6)}", attempt=0
        ),
        hostname=name,
        log_directory=os.path.join(runtime.base, "logs", name),
        dns_config=pb.DNSConfig(servers=["10.123.0.10"], searches=["bench.local"]),
        labels={"bench": "pod"},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=runtime.cgroup_parent),
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(runtime: Runtime, iterations: int, concurrent: int) -> dict[str, Any]:
    stub = runtime.stub()
    # warm-up: caches, the pause image unpack, the bridge
    warm = stub.RunPodSandbox(
        pb.RunPodSandboxRequest(config=pod_config(runtime, "warm")), timeout=240
    ).pod_sandbox_id
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=warm))
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=warm))
    runs, stops, removes = [], [], []
    for i in range(iterations):
        config = pod_config(runtime, f"seq-{i}")
        started = time.perf_counter()
        sandbox_id = stub.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config), timeout=240
        ).pod_sandbox_id
        runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
        stops.append(time.perf_counter() - started)
        started = time.perf_counter()
        stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
        removes.append(time.perf_counter() - started)
    configs = [pod_config(runtime, f"par-{i}") for i in range(concurrent)]
    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        started = time.perf_counter()
        ids = list(
            pool.map(
                lambda c: (
                    stub.RunPodSandbox(
                        pb.RunPodSandboxRequest(config=c), timeout=240
                    ).pod_sandbox_id
                ),
                configs,
            )
        )
        wall = time.perf_counter() - started
    ready = sum(
        stub.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=i)).status.state
        == pb.PodSandboxState.SANDBOX_READY
        for i in ids
    )
    runtime.remove_all()
    return {
        "RunPodSandbox": runs,
        "StopPodSandbox": stops,
        "RemovePodSandbox": removes,
        "concurrent_wall_s": wall,
        "concurrent_ready": ready,
    }


@contextlib.contextmanager
def bench_dir() -> Iterator[str]:
    base = tempfile.mkdtemp(prefix="cpod-bench-", dir="/tmp")
    try:
        yield base
    finally:
        with open("/proc/self/mountinfo") as f:
            targets = sorted({ln.split()[4] for ln in f if ln.split()[4].startswith(base)})
        for target in reversed(targets):
            run("umount", "-l", target, check=False)
        shutil.rmtree(base, ignore_errors=True)


def remove_cgroup_tree(cgroup_path: str) -> None:
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy, cgroup_path.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: len(t[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def preflight(prog: str) -> bool:
    """Root and the peers' binaries are there; says what is missing on stderr otherwise."""
    if os.geteuid() != 0:
        print(f"{prog}: needs root (namespaces, mounts, cgroups)", file=sys.stderr)
        return False
    for binary in ("/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/conmon"):
        if not os.access(binary, os.X_OK):
            print(f"{prog}: {binary} missing (make bench installs it)", file=sys.stderr)
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    if not preflight("bench/pod.py"):
        return 1
    results: dict[str, dict[str, Any]] = {}
    cgroup_parent = f"/cpod-bench-{secrets.token_hex(3)}"
    try:
        for index, cls in enumerate((Crib, Containerd)):
            with bench_dir() as base:
                runtime = cls(base, f"10.123.{240 + index}", cgroup_parent)
                try:
                    runtime.start()
                    results[runtime.name] = measure(runtime, args.iterations, args.concurrent)
                finally:
                    runtime.stop()
    finally:
        remove_cgroup_tree(cgroup_parent)
    report(results, args.iterations, args.concurrent)
    return 0


def report(results: dict[str, dict[str, Any]], iterations: int, concurrent: int) -> None:
    crib, peer = results["crib"], results["containerd"]
    print(f"pod sandboxes with networking, runc, {iterations} sequential runs (ms)")
    header = ("operation", "crib p50", "p90", "containerd p50", "p90", "ratio p50")
    print("{:<18} {:>9} {:>7} {:>15} {:>7} {:>10}".format(*header))
    for op in ("RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"):
        c50, c90 = percentile(crib[op], 0.5) * 1e3, percentile(crib[op], 0.9) * 1e3
        p50, p90 = percentile(peer[op], 0.5) * 1e3, percentile(peer[op], 0.9) * 1e3
        print(f"{op:<18} {c50:>9.1f} {c90:>7.1f} {p50:>15.1f} {p90:>7.1f} {c50 / p50:>10.2f}")
    cw, pw = crib["concurrent_wall_s"], peer["concurrent_wall_s"]
    print(
        f"{concurrent} pods concurrently: crib {cw:.2f} s ({crib['concurrent_ready']} ready),"
        f" containerd {pw:.2f} s ({peer['concurrent_ready']} ready), ratio {cw / pw:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
