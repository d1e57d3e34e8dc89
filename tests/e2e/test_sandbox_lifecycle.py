"""Pod sandbox lifecycle over gRPC, as kubelet drives it: run, status, list, stop, remove,
idempotence, refusals, and what the pod looks like from inside (namespaces, files,
cgroup, no capabilities)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.pods import PodCrib, in_netns, pod_crib
from tests.handlers import HANDLERS
from tests.leakcheck import no_leaks  # noqa: F401 - module-wide leak check

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_leaks")]


@pytest.fixture(scope="module", params=HANDLERS)
def crib(request: pytest.FixtureRequest) -> Iterator[PodCrib]:
    with pod_crib(request.param) as crib:
        yield crib


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_run_status_list_stop_remove(crib: PodCrib) -> None:
    config = crib.pod_config(
        "web",
        hostname="web-0",
        labels={"app": "web", "tier": "front"},
        annotations={"note": "kept"},
        log_directory="/var/log/pods/cpod-web",
    )
    sandbox_id = crib.run_pod(config)
    assert len(sandbox_id) == 64
    status = crib.status(sandbox_id).status
    assert status.id == sandbox_id
    assert status.state == pb.PodSandboxState.SANDBOX_READY
    assert status.metadata.name == "web"
    assert status.metadata.namespace == "cpod-test"
    assert dict(status.labels) == {"app": "web", "tier": "front"}
    assert dict(status.annotations) == {"note": "kept"}
    assert status.runtime_handler == crib.handler
    assert status.created_at > 0
    assert status.network.ip.startswith(crib.network.subnet_prefix + ".")
    assert status.linux.namespaces.options.network == pb.NamespaceMode.POD
    assert status.linux.namespaces.options.pid == pb.NamespaceMode.POD

    [item] = crib.list_pods(id=sandbox_id)
    assert item.metadata.name == "web"
    assert item.state == pb.PodSandboxState.SANDBOX_READY

    crib.stop_pod(sandbox_id)
    crib.stop_pod(sandbox_id)  # idempotent
    status = crib.status(sandbox_id).status
    assert status.state == pb.PodSandboxState.SANDBOX_NOTREADY
    assert status.network.ip == ""
    assert crib.network.leases() == []  # the IP went back on stop

    crib.remove_pod(sandbox_id)
    crib.remove_pod(sandbox_id)  # idempotent
    with pytest.raises(grpc.RpcError) as err:
        crib.status(sandbox_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert crib.list_pods(id=sandbox_id) == []


def test_unknown_ids_stop_and_remove_succeed(crib: PodCrib) -> None:
    crib.stop_pod("0" * 64)
    crib.remove_pod("0" * 64)
    with pytest.raises(grpc.RpcError) as err:
        crib.status("0" * 64)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_remove_of_a_running_pod_stops_it_first(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    pid = crib.info(sandbox_id)["pid"]
    crib.remove_pod(sandbox_id)
    assert not os.path.exists(f"/proc/{pid}") or proc_status(pid)["State"].startswith("Z")
    assert crib.network.leases() == []


def test_list_filters(crib: PodCrib) -> None:
    a = crib.run_pod(crib.pod_config("a", labels={"app": "x", "v": "1"}))
    b = crib.run_pod(crib.pod_config("b", labels={"app": "x", "v": "2"}))
    crib.stop_pod(b)
    try:
        ids = {p.id for p in crib.list_pods(label_selector={"app": "x"})}
        assert ids == {a, b}
        assert [p.id for p in crib.list_pods(label_selector={"v": "2"})] == [b]
        ready = pb.PodSandboxStateValue(state=pb.PodSandboxState.SANDBOX_READY)
        assert [p.id for p in crib.list_pods(state=ready, label_selector={"app": "x"})] == [a]
        assert [p.id for p in crib.list_pods(id=a[:12])] == [a]  # id prefix
        # Status, Stop and Remove accept a unique prefix too (crictl passes what you type).
        assert crib.status(b[:12]).status.id == b
    finally:
        crib.remove_pod(a)
        crib.remove_pod(b)


def test_duplicate_name_is_already_exists_naming_the_holder(crib: PodCrib) -> None:
    config = crib.pod_config("dup")
    first = crib.run_pod(config)
    try:
        with pytest.raises(grpc.RpcError) as err:
            crib.run_pod(config)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert first in err.value.details()
        assert "k8s_POD_dup_cpod-test_" in err.value.details()
    finally:
        crib.remove_pod(first)
    # The name is free again once the holder is removed.
    crib.remove_pod(crib.run_pod(config))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (pb.PodSandboxConfig(), "config.metadata is required"),
        (
            pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="x", namespace="y")),
            "config.metadata.uid is required",
        ),
    ],
)
def test_invalid_config_named(crib: PodCrib, config: pb.PodSandboxConfig, field: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        crib.run_pod(config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert crib.list_pods() == []


def test_non_namespaced_sysctl_refused_and_nothing_made(crib: PodCrib) -> None:
    config = crib.pod_config(linux=pb.LinuxPodSandboxConfig(sysctls={"kernel.panic": "0"}))
    with pytest.raises(grpc.RpcError) as err:
        crib.run_pod(config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "kernel.panic" in err.value.details()
    assert "not namespaced" in err.value.details()
    assert crib.list_pods() == []


def test_pause_is_pid_1_without_capabilities_in_its_cgroup(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod(
        crib.pod_config(
            linux=pb.LinuxPodSandboxConfig(
                sysctls={"net.ipv4.ip_unprivileged_port_start": "99", "kernel.shmmni": "1234"}
            )
        )
    )
    try:
        info = crib.info(sandbox_id)
        pid = info["pid"]
        status = proc_status(pid)
        assert status["NSpid"].split()[-1] == "1"  # pid 1 of the pod's PID namespace
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[cap], 16) == 0, cap
        assert status["NoNewPrivs"] == "1"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[:2] == [b"/usr/bin/catatonit", b"-P"]
        # Its root holds nothing but the pause binary.
        assert sorted(os.listdir(f"/proc/{pid}/root/usr/bin")) == ["catatonit"]
        with open(f"/proc/{pid}/cgroup") as f:
            cgroups = f.read()
        assert f"{crib.cgroup_parent}/crib-{sandbox_id}" in cgroups
        # Each namespace is pinned and is the pause's.
        for kind in ("net", "ipc", "uts", "pid"):
            pin = info["namespaces"][kind]
            assert pin.endswith(f"/ns/{kind}/{sandbox_id}")
            assert os.stat(pin).st_ino == os.stat(f"/proc/{pid}/ns/{kind}").st_ino
        netns = info["namespaces"]["net"]
        assert in_netns(netns, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start") == "99\n"
        ipc = in_netns(netns, "cat", "/proc/sys/kernel/shmmni", kinds=("ipc",))
        assert ipc == "1234\n"
        with open("/proc/sys/kernel/shmmni") as f:
            assert f.read() != "1234\n"  # the host's is untouched
        assert "eth0" in in_netns(netns, "ip", "-o", "addr")
        assert info["config"]["metadata"]["namespace"] == "cpod-test"
    finally:
        crib.remove_pod(sandbox_id)
    assert not os.path.exists(info["namespaces"]["net"])
    assert not os.path.isdir(f"/sys/fs/cgroup/memory{crib.cgroup_parent}/crib-{sandbox_id}")


def test_pid_namespace_modes(crib: PodCrib) -> None:
    for mode, pid_in_pod in ((pb.NamespaceMode.CONTAINER, "1"), (pb.NamespaceMode.NODE, None)):
        ctx = pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(pid=mode))
        sandbox_id = crib.run_pod(
            crib.pod_config(linux=pb.LinuxPodSandboxConfig(security_context=ctx))
        )
        try:
            info = crib.info(sandbox_id)
            nspid = proc_status(info["pid"])["NSpid"].split()
            if pid_in_pod is None:
                assert len(nspid) == 1  # the host's PID namespace
            else:
                assert nspid[-1] == pid_in_pod
            # Only a pod-shared PID namespace is pinned.
            assert "pid" not in info["namespaces"]
            assert crib.status(sandbox_id).status.linux.namespaces.options.pid == mode
        finally:
            crib.remove_pod(sandbox_id)


def test_verbose_status_runs_cni_check(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    try:
        info = crib.info(sandbox_id)
        assert info["cniCheck"] == "ok"
        assert info["cniNetwork"] == crib.network.name
        ip = crib.status(sandbox_id).status.network.ip
        in_netns(info["namespaces"]["net"], "ip", "addr", "del", f"{ip}/24", "dev", "eth0")
        check = crib.info(sandbox_id)["cniCheck"]
        assert check.startswith("failed: cni plugin bridge CHECK failed")
        # kubelet's plain status polls do not run plugins
        assert crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_READY
    finally:
        crib.remove_pod(sandbox_id)
