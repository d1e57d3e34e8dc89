"""Helpers for pod sandbox e2e tests: a crib with its own CNI network, pod configs, and a
cleanup that leaves the machine as it was even when a test fails.

Everything is named with a prefix (`cpod` by default; the container tests use `cctr`):
base dir /tmp/<prefix>-<rand> (socket, roots, conf dir, host-local IPAM data), bridge
<prefix><rand>, network <prefix>-<rand>, a subnet in 10.123.0.0/16 (cctr: 10.124.0.0/16),
cgroup parent /<prefix>-<rand>. The test network has no gateway flag and no
masquerade (isGateway would switch on net.ipv4.ip_forward for the whole host): the test
gives the bridge its address itself, like the critest kit's net.sh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from cri.api import api_pb2 as pb
from tests.e2e.daemon import CribDaemon

PLUGIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]
TEST_PLUGIN = os.path.join(os.path.dirname(__file__), "..", "fakes", "cni_plugin.py")
PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


@dataclasses.dataclass
class CribNetwork:
    """A bridge network of our own for one crib."""

    name: str
    bridge: str
    subnet_prefix: str  # "10.123.N"
    data_dir: str
    extra_plugins: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    portmap: bool = True

    @property
    def gateway(self) -> str:
        return f"{self.subnet_prefix}.1"

    def conflist(self) -> dict[str, Any]:
        plugins: list[dict[str, Any]] = [
            {
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": f"{self.subnet_prefix}.0/24", "gateway": self.gateway}]],
                    "dataDir": self.data_dir,
                },
            }
        ]
        if self.portmap:
            plugins.append(
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
            )
        plugins.extend(self.extra_plugins)
        return {"cniVersion": "1.0.0", "name": self.name, "plugins": plugins}

    def leases(self) -> list[str]:
        """IPs host-local has handed out and not got back."""
        lease_dir = os.path.join(self.data_dir, self.name)
        try:
            names = os.listdir(lease_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n[0].isdigit())


# The /16 each prefix draws its test subnets from (distinct: both may run at once).
TEST_RANGES = {"cpod": "10.123", "cctr": "10.124", "cstm": "10.125", "cobs": "10.126"}


def new_network(base_dir: str, prefix: str = "cpod", **kwargs: Any) -> CribNetwork:
    suffix = secrets.token_hex(4)
    return CribNetwork(
        name=f"{prefix}-{suffix}",
        bridge=f"{prefix}{suffix}",
        subnet_prefix=f"{TEST_RANGES[prefix]}.{secrets.randbelow(250) + 1}",
        data_dir=os.path.join(base_dir, "ipam"),
        **kwargs,
    )


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


class PodCrib:
    """A crib daemon plus its test network and the pods the test made."""

    def __init__(
        self,
        handler: str,
        network_options: dict[str, Any],
        config: dict[str, Any],
        prefix: str = "cpod",
    ):
        self.prefix = prefix
        self.base_dir = tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp")
        self.handler = handler
        self.network = new_network(self.base_dir, prefix, **network_options)
        self.cgroup_parent = f"/{prefix}-{secrets.token_hex(4)}"
        self.bin_dir = os.path.join(self.base_dir, "bin")
        os.makedirs(self.bin_dir)
        for name in ("cpod-test",):
            os.symlink(os.path.abspath(TEST_PLUGIN), os.path.join(self.bin_dir, name))
        self.portmap_chains_before = {c for c in PORTMAP_CHAINS if _chain_exists(c)}
        settings: dict[str, Any] = {
            "default_runtime": handler,
            "cni": {
                "conf_dir": os.path.join(self.base_dir, "net.d"),
                "bin_dirs": [self.bin_dir, *PLUGIN_DIRS],
                "plugin_timeout_s": 30,
            },
        }
        settings.update(config)
        self.daemon = CribDaemon(base_dir=self.base_dir, **settings)
        self.write_conflist()
        self.make_bridge()

    def write_conflist(self) -> None:
        conf_dir = self.daemon.config["cni"]["conf_dir"]
        os.makedirs(conf_dir, exist_ok=True)
        with open(os.path.join(conf_dir, f"10-{self.prefix}.conflist"), "w") as f:
            json.dump(self.network.conflist(), f)

    def make_bridge(self) -> None:
        bridge = self.network.bridge
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.network.gateway}/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")

    # -- talking to crib --------------------------------------------------------------------

    def runtime(self) -> Any:
        return self.daemon.runtime()

    def pod_config(self, name: str = "", **fields: Any) -> pb.PodSandboxConfig:
        """A pod config in this crib's cgroup parent; `fields` as PodSandboxConfig kwargs."""
        name = name or f"pod-{secrets.token_hex(3)}"
        linux = fields.pop("linux", pb.LinuxPodSandboxConfig())
        if not linux.cgroup_parent:
            linux.cgroup_parent = self.cgroup_parent
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=name,
                namespace=f"{self.prefix}-test",
                uid=f"uid-{secrets.token_hex(4)}",
                attempt=0,
            ),
            linux=linux,
            **fields,
        )

    def run_pod(self, config: pb.PodSandboxConfig | None = None, **kwargs: Any) -> str:
        config = config if config is not None else self.pod_config()
        response = self.runtime().RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=self.handler), **kwargs
        )
        return str(response.pod_sandbox_id)

    def status(self, sandbox_id: str, verbose: bool = False) -> pb.PodSandboxStatusResponse:
        return self.runtime().PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        )

    def info(self, sandbox_id: str) -> dict[str, Any]:
        return dict(json.loads(self.status(sandbox_id, verbose=True).info["info"]))

    def netns(self, sandbox_id: str) -> str:
        return str(self.info(sandbox_id)["namespaces"]["net"])

    def stop_pod(self, sandbox_id: str) -> None:
        self.runtime().StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_pod(self, sandbox_id: str) -> None:
        self.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def list_pods(self, **flt: Any) -> list[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(**flt) if flt else None)
        return list(self.runtime().ListPodSandbox(request).items)

    # -- cleanup ------------------------------------------------------------------------------

    def remove_all_pods(self) -> None:
        """Stop and remove every pod through crib (best effort: the sweep follows)."""
        if self.daemon.process is None:
            return
        with contextlib.suppress(grpc.RpcError):
            for item in self.list_pods():
                with contextlib.suppress(grpc.RpcError):
                    self.remove_pod(item.id)

    def cleanup(self) -> None:
        """Put the machine back: pods, daemon, leftover processes and mounts, bridge,
        portmap chains we caused, cgroups, files."""
        self.remove_all_pods()
        with contextlib.suppress(Exception):
            self.daemon.kill()
        for pid in processes_under(self.base_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        for target in mounts_under(self.base_dir):
            _run("umount", "-l", target)
        _run("ip", "link", "del", self.network.bridge)
        _cleanup_portmap(self.portmap_chains_before)
        kill_cgroup_tree(self.cgroup_parent)
        remove_cgroup_tree(self.cgroup_parent)
        shutil.rmtree(self.base_dir, ignore_errors=True)


@contextlib.contextmanager
def pod_crib(
    handler: str, network: dict[str, Any] | None = None, prefix: str = "cpod", **config: Any
) -> Iterator[PodCrib]:
    """A started crib with its own network; everything is cleaned up afterwards."""
    crib = PodCrib(handler, network or {}, config, prefix)
    try:
        crib.daemon.start()
        yield crib
    finally:
        crib.cleanup()


def processes_under(base_dir: str) -> list[int]:
    """Live processes whose command line names `base_dir` (conmon, pause, helpers)."""
    found = []
    for pid_dir in os.listdir("/proc"):
        if not pid_dir.isdigit() or int(pid_dir) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid_dir}/cmdline", "rb") as f:
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if base_dir.encode() in cmdline:
            found.append(int(pid_dir))
    return found


def mounts_under(base_dir: str) -> list[str]:
    """Mount points below `base_dir`, deepest first."""
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(base_dir)]
    return sorted(set(targets), key=len, reverse=True)


def kill_cgroup_tree(cgroup_path: str) -> None:
    """SIGKILL every process in `cgroup_path` and below (containers whose monitor is gone)."""
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy, cgroup_path.lstrip("/"))
        for dirpath, _, filenames in os.walk(top):
            if "cgroup.procs" not in filenames:
                continue
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                for line in f:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(line), signal.SIGKILL)
    time.sleep(0.1)


def remove_cgroup_tree(cgroup_path: str) -> None:
    """rmdir `cgroup_path` and everything below it in every hierarchy (leaves first)."""
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        root = os.path.join("/sys/fs/cgroup", hierarchy)
        top = os.path.join(root, cgroup_path.lstrip("/"))
        if os.path.islink(root) or not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: len(t[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _chain_exists(chain: str) -> bool:
    return _run("iptables", "-t", "nat", "-S", chain).returncode == 0


def _cleanup_portmap(existed_before: set[str]) -> None:
    """portmap leaves its top-level nat chains when the last mapping goes; remove the ones
    this test created, once they hold no mapping (as the critest kit's net.sh does)."""
    if "CNI-HOSTPORT-DNAT" in existed_before or not _chain_exists("CNI-HOSTPORT-DNAT"):
        return
    rules = _run("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").stdout
    if any(line.startswith("-A") for line in rules.splitlines()):
        return  # someone else's mappings are in it
    _run("iptables", "-t", "nat", "-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL",
         "-j", "CNI-HOSTPORT-DNAT")  # fmt: skip
    _run("iptables", "-t", "nat", "-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL",
         "-j", "CNI-HOSTPORT-DNAT")  # fmt: skip
    _run("iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment",
         "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ")  # fmt: skip
    for chain in PORTMAP_CHAINS:
        if chain not in existed_before:
            _run("iptables", "-t", "nat", "-F", chain)
            _run("iptables", "-t", "nat", "-X", chain)


# -- traffic made by the tests -------------------------------------------------------------

ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print(s.getsockname()[1], flush=True)
s.settimeout(20)
for _ in range(int(sys.argv[3])):
    c, peer = s.accept()
    c.sendall(c.recv(1024) + b' from ' + peer[0].encode())
    c.close()
"""


@contextlib.contextmanager
def echo_server(
    bind_ip: str, port: int = 0, netns: str = "", connections: int = 1
) -> Iterator[int]:
    """A one-shot TCP echo server (in `netns` if given); yields its port."""
    argv = [sys.executable, "-c", ECHO_SERVER, bind_ip, str(port), str(connections)]
    if netns:
        argv = ["nsenter", f"--net={netns}", *argv]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, "echo server did not start"
        yield int(line)
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b'ping')
print(c.recv(1024).decode())
"""


def echo(ip: str, port: int, netns: str = "") -> str:
    """Send "ping" to an echo server (from `netns` if given); returns the reply."""
    argv = [sys.executable, "-c", CLIENT, ip, str(port)]
    if netns:
        argv = ["nsenter", f"--net={netns}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_netns(netns: str, *argv: str, kinds: Sequence[str] = ("net",)) -> str:
    """Run a command in the pod's namespaces (nsenter; the test does this, not crib)."""
    flags = [f"--{kind}={netns.replace('/net/', f'/{kind}/')}" for kind in kinds]
    done = subprocess.run(["nsenter", *flags, *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
