"""Pod networking with the real Debian CNI plugins (bridge, host-local, portmap, loopback):
pod to pod and pod to host over the bridge, hostPort on 127.0.0.1, host network and host
IPC pods, DNS and hostname, CNI_ARGS and capability arguments, and the undo of a failed
RunPodSandbox (a test plugin that fails ADD; a runtime that cannot start the pause)."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.pods import (
    PodCrib,
    echo,
    echo_server,
    free_port,
    in_netns,
    mounts_under,
    pod_crib,
    processes_under,
)
from tests.handlers import HANDLERS
from tests.leakcheck import no_leaks  # noqa: F401 - module-wide leak check

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_leaks")]


@pytest.fixture(scope="module", params=HANDLERS)
def crib(request: pytest.FixtureRequest) -> Iterator[PodCrib]:
    with pod_crib(request.param) as crib:
        yield crib


@pytest.fixture(scope="module")
def handler(crib: PodCrib) -> str:
    return crib.handler


def host_namespace(kind: str) -> int:
    return os.stat(f"/proc/self/ns/{kind}").st_ino


def test_two_pods_reach_each_other_and_the_host(crib: PodCrib) -> None:
    a = crib.run_pod()
    b = crib.run_pod()
    try:
        ip_a = crib.status(a).status.network.ip
        ip_b = crib.status(b).status.network.ip
        assert ip_a != ip_b
        netns_a, netns_b = crib.netns(a), crib.netns(b)
        with echo_server("0.0.0.0", netns=netns_a) as port:
            assert echo(ip_a, port, netns=netns_b) == f"ping from {ip_b}"
        # pod -> host: a server on the bridge address, the client in the pod
        with echo_server(crib.network.gateway) as port:
            assert echo(crib.network.gateway, port, netns=netns_a) == f"ping from {ip_a}"
        # host -> pod
        with echo_server("0.0.0.0", netns=netns_b) as port:
            assert echo(ip_b, port) == f"ping from {crib.network.gateway}"
        # the pod's own loopback is up (the loopback plugin ran on lo)
        with echo_server("127.0.0.1", netns=netns_a) as port:
            assert echo("127.0.0.1", port, netns=netns_a) == "ping from 127.0.0.1"
    finally:
        crib.remove_pod(a)
        crib.remove_pod(b)
    assert crib.network.leases() == []


def test_host_port_on_127_0_0_1_reaches_the_pod(crib: PodCrib) -> None:
    host_port = free_port()
    config = crib.pod_config(
        port_mappings=[
            pb.PortMapping(
                protocol=pb.Protocol.TCP,
                container_port=8080,
                host_port=host_port,
                host_ip="127.0.0.1",
            )
        ]
    )
    sandbox_id = crib.run_pod(config)
    try:
        with echo_server("0.0.0.0", 8080, netns=crib.netns(sandbox_id)):
            reply = echo("127.0.0.1", host_port)
        # portmap masquerades traffic from 127.0.0.1 (snat, route_localnet on the bridge)
        assert reply == f"ping from {crib.network.gateway}"
    finally:
        crib.remove_pod(sandbox_id)
    with pytest.raises(ConnectionRefusedError):  # the mapping went with the pod
        socket.create_connection(("127.0.0.1", host_port), timeout=2).close()


def test_host_network_pod(crib: PodCrib) -> None:
    ctx = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(network=pb.NamespaceMode.NODE)
    )
    sandbox_id = crib.run_pod(crib.pod_config(linux=pb.LinuxPodSandboxConfig(security_context=ctx)))
    try:
        info = crib.info(sandbox_id)
        status = crib.status(sandbox_id).status
        assert status.linux.namespaces.options.network == pb.NamespaceMode.NODE
        assert status.network.ip == ""  # kubelet uses the node's IPs
        assert os.stat(f"/proc/{info['pid']}/ns/net").st_ino == host_namespace("net")
        assert os.stat(f"/proc/{info['pid']}/ns/uts").st_ino == host_namespace("uts")
        assert "net" not in info["namespaces"]
        assert "cniResult" not in info
        with open(os.path.join(info["runDir"], "hostname")) as f:
            assert f.read() == socket.gethostname() + "\n"
    finally:
        crib.remove_pod(sandbox_id)


def test_host_ipc_pod(crib: PodCrib) -> None:
    ctx = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(ipc=pb.NamespaceMode.NODE)
    )
    sandbox_id = crib.run_pod(crib.pod_config(linux=pb.LinuxPodSandboxConfig(security_context=ctx)))
    try:
        info = crib.info(sandbox_id)
        assert os.stat(f"/proc/{info['pid']}/ns/ipc").st_ino == host_namespace("ipc")
        assert os.stat(f"/proc/{info['pid']}/ns/net").st_ino != host_namespace("net")
        assert "ipc" not in info["namespaces"]
        assert not mounts_under(info["runDir"])  # no pod /dev/shm: the host's is shared
        assert crib.status(sandbox_id).status.linux.namespaces.options.ipc == pb.NamespaceMode.NODE
    finally:
        crib.remove_pod(sandbox_id)


def test_pod_ipc_namespace_has_its_own_shm(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    try:
        info = crib.info(sandbox_id)
        shm = os.path.join(info["runDir"], "shm")
        assert shm in mounts_under(info["runDir"])
        assert os.stat(shm).st_mode & 0o7777 == 0o1777
        assert os.stat(f"/proc/{info['pid']}/ns/ipc").st_ino != host_namespace("ipc")
    finally:
        crib.remove_pod(sandbox_id)
    assert not mounts_under(info["runDir"])


def test_dns_and_hostname_as_configured(crib: PodCrib) -> None:
    config = crib.pod_config(
        hostname="cpod-dns",
        dns_config=pb.DNSConfig(
            servers=["10.123.0.10", "fd00::10"],
            searches=["cpod-test.svc.cluster.local", "svc.cluster.local"],
            options=["ndots:5", "timeout:2"],
        ),
    )
    sandbox_id = crib.run_pod(config)
    try:
        info = crib.info(sandbox_id)
        ip = crib.status(sandbox_id).status.network.ip
        with open(os.path.join(info["runDir"], "resolv.conf")) as f:
            assert f.read() == (
                "search cpod-test.svc.cluster.local svc.cluster.local\n"
                "nameserver 10.123.0.10\nnameserver fd00::10\n"
                "options ndots:5 timeout:2\n"
            )
        with open(os.path.join(info["runDir"], "hosts")) as f:
            assert f"{ip}\tcpod-dns\n" in f.read()
        with open(os.path.join(info["runDir"], "hostname")) as f:
            assert f.read() == "cpod-dns\n"
        uts = info["namespaces"]["uts"]
        assert in_netns(uts, "hostname", kinds=("uts",)) == "cpod-dns\n"
        assert socket.gethostname() != "cpod-dns"
    finally:
        crib.remove_pod(sandbox_id)


def test_defaults_host_resolv_conf_and_id_hostname(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    try:
        info = crib.info(sandbox_id)
        with (
            open(os.path.join(info["runDir"], "resolv.conf"), "rb") as f,
            open("/etc/resolv.conf", "rb") as host,
        ):
            assert f.read() == host.read()
        assert in_netns(info["namespaces"]["uts"], "hostname", kinds=("uts",)) == (
            sandbox_id[:12] + "\n"
        )
    finally:
        crib.remove_pod(sandbox_id)


def calls(record_dir: str) -> list[dict[str, object]]:
    try:
        with open(os.path.join(record_dir, "calls.jsonl")) as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        return []


def test_cni_args_and_capabilities_reach_the_plugins(handler: str) -> None:
    record_dir = f"/tmp/cpod-rec-{secrets.token_hex(4)}"
    os.makedirs(record_dir)
    spy = {
        "type": "cpod-test",
        "recordDir": record_dir,
        "capabilities": {"portMappings": True, "bandwidth": True},
    }
    try:
        with pod_crib(handler, network={"extra_plugins": [spy], "portmap": False}) as crib:
            port = free_port()
            config = crib.pod_config(
                "spied",
                port_mappings=[
                    pb.PortMapping(protocol=pb.Protocol.UDP, container_port=53, host_port=port)
                ],
                annotations={
                    "kubernetes.io/ingress-bandwidth": "10M",
                    "kubernetes.io/egress-bandwidth": "1M",
                },
            )
            sandbox_id = crib.run_pod(config)
            [add] = calls(record_dir)
            env, conf = add["env"], add["conf"]
            assert isinstance(env, dict)
            assert isinstance(conf, dict)
            assert env["CNI_COMMAND"] == "ADD"
            assert env["CNI_IFNAME"] == "eth0"
            assert env["CNI_CONTAINERID"] == sandbox_id
            assert env["CNI_NETNS"] == crib.netns(sandbox_id)
            args = dict(kv.split("=", 1) for kv in env["CNI_ARGS"].split(";"))
            assert args == {
                "IgnoreUnknown": "1",
                "K8S_POD_NAMESPACE": "cpod-test",
                "K8S_POD_NAME": "spied",
                "K8S_POD_INFRA_CONTAINER_ID": sandbox_id,
                "K8S_POD_UID": config.metadata.uid,
            }
            assert conf["runtimeConfig"]["portMappings"] == [
                {"hostPort": port, "containerPort": 53, "protocol": "udp"}
            ]
            bandwidth = conf["runtimeConfig"]["bandwidth"]
            assert bandwidth["ingressRate"] == 10_000_000
            assert bandwidth["egressRate"] == 1_000_000
            assert conf["prevResult"]["ips"][0]["address"].startswith(crib.network.subnet_prefix)
            crib.stop_pod(sandbox_id)
            dels = [c for c in calls(record_dir) if c["command"] == "DEL"]
            assert len(dels) == 1
            assert dels[0]["conf"]["prevResult"] == conf["prevResult"]  # the cached result
    finally:
        for name in os.listdir(record_dir):
            os.unlink(os.path.join(record_dir, name))
        os.rmdir(record_dir)


def listdir(path: str) -> list[str]:
    return os.listdir(path) if os.path.isdir(path) else []


def assert_nothing_left(crib: PodCrib) -> None:
    assert crib.list_pods() == []
    assert crib.network.leases() == []
    state = crib.daemon.state
    for kind in ("net", "ipc", "uts", "pid"):
        assert listdir(os.path.join(state, "ns", kind)) == []
    assert listdir(os.path.join(state, "pods")) == []
    assert mounts_under(crib.base_dir) == []
    assert [p for p in processes_under(crib.base_dir) if p != crib.daemon.process.pid] == []
    bridge_ports = os.listdir(f"/sys/class/net/{crib.network.bridge}/brif")
    assert bridge_ports == []  # the veth went with the DEL
    leaf = f"/sys/fs/cgroup/memory{crib.cgroup_parent}"
    assert not os.path.isdir(leaf) or [d for d in os.listdir(leaf) if d.startswith("crib-")] == []


def test_failing_plugin_undoes_everything(handler: str) -> None:
    record_dir = f"/tmp/cpod-rec-{secrets.token_hex(4)}"
    os.makedirs(record_dir)
    failing = {"type": "cpod-test", "recordDir": record_dir, "failOn": "ADD"}
    try:
        with pod_crib(handler, network={"extra_plugins": [failing]}) as crib:
            port = free_port()
            config = crib.pod_config(
                "doomed",
                port_mappings=[pb.PortMapping(container_port=80, host_port=port)],
            )
            with pytest.raises(grpc.RpcError) as err:
                crib.run_pod(config)
            assert "cpod test plugin fails ADD" in err.value.details()
            assert "code 100" in err.value.details()
            assert "as configured (failOn)" in err.value.details()
            assert [c["command"] for c in calls(record_dir)] == ["ADD", "DEL"]
            assert_nothing_left(crib)
            # The name was released: once the network works, the same pod runs.
            crib.network.extra_plugins.clear()
            crib.write_conflist()
            sandbox_id = crib.run_pod(config)
            assert crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_READY
            crib.remove_pod(sandbox_id)
            assert_nothing_left(crib)
    finally:
        for name in os.listdir(record_dir):
            os.unlink(os.path.join(record_dir, name))
        os.rmdir(record_dir)


def test_pause_that_cannot_start_undoes_everything(crib: PodCrib) -> None:
    # A namespaced sysctl the kernel does not have: validation passes, the runtime's
    # create fails writing it, after the run dir, shm and conmon were set up.
    config = crib.pod_config(
        "never", linux=pb.LinuxPodSandboxConfig(sysctls={"net.ipv4.cpod_no_such_sysctl": "1"})
    )
    with pytest.raises(grpc.RpcError) as err:
        crib.run_pod(config)
    assert "cpod_no_such_sysctl" in err.value.details()
    assert_nothing_left(crib)


def test_runtime_that_cannot_even_delete_still_leaves_nothing(handler: str) -> None:
    # A handler whose binary fails every command (create and delete alike): the undo finds
    # no process in the pause's cgroup and finishes instead of keeping a record forever.
    with pod_crib(handler, runtimes={"broken": {"path": "/bin/false"}}) as crib:
        with pytest.raises(grpc.RpcError) as err:
            crib.runtime().RunPodSandbox(
                pb.RunPodSandboxRequest(config=crib.pod_config("never"), runtime_handler="broken")
            )
        assert "/bin/false" in err.value.details()
        assert_nothing_left(crib)


def test_bad_cni_config_fails_the_pod_and_leaves_nothing(handler: str) -> None:
    with pod_crib(handler) as crib:
        conflist = os.path.join(crib.daemon.config["cni"]["conf_dir"], "10-cpod.conflist")
        with open(conflist, "w") as f:
            f.write('{"cniVersion": "1.0.0", "name": "cpod-broken", "plugins": [}')
        conditions = {
            c.type: c for c in crib.runtime().Status(pb.StatusRequest()).status.conditions
        }
        assert not conditions["NetworkReady"].status
        assert "10-cpod.conflist" in conditions["NetworkReady"].message
        with pytest.raises(grpc.RpcError) as err:
            crib.run_pod(crib.pod_config("no-net"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "10-cpod.conflist" in err.value.details()
        assert_nothing_left(crib)
        crib.write_conflist()  # fixed: the conf dir is re-read
        crib.remove_pod(crib.run_pod(crib.pod_config("no-net")))
        assert_nothing_left(crib)
