"""Pods across crashes: kill -9 crib and restart (pods READY with the same IPs), a pause
that dies (with crib up or down), pins gone as after a reboot (CNI DEL without a netns
still frees the IP), leaked attachments released at start-up, a kill mid-RunPodSandbox,
and kubelet's retry of a RunPodSandbox that outlived its deadline (resourcestore)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from cri.api import api_pb2 as pb
from sandbox.monitor import proc
from tests.e2e.pods import PodCrib, echo, echo_server, mounts_under, pod_crib
from tests.handlers import HANDLERS, runtime_binary
from tests.leakcheck import no_leaks  # noqa: F401 - module-wide leak check

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_leaks")]


@pytest.fixture(params=HANDLERS)
def handler(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def crib(handler: str) -> Iterator[PodCrib]:
    with pod_crib(handler) as crib:
        yield crib


def wait_for(predicate: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def restart(crib: PodCrib) -> None:
    crib.daemon.kill()
    crib.daemon.start()


def test_kill_9_and_restart_keeps_pods_ready_with_the_same_ips(crib: PodCrib) -> None:
    pods = [crib.run_pod() for _ in range(3)]
    ips = {p: crib.status(p).status.network.ip for p in pods}
    pids = {p: crib.info(p)["pid"] for p in pods}
    restart(crib)
    for sandbox_id in pods:
        status = crib.status(sandbox_id).status
        assert status.state == pb.PodSandboxState.SANDBOX_READY
        assert status.network.ip == ips[sandbox_id]
        assert crib.info(sandbox_id)["pid"] == pids[sandbox_id]
    # and the network still works
    with echo_server("0.0.0.0", netns=crib.netns(pods[0])) as port:
        assert echo(ips[pods[0]], port, netns=crib.netns(pods[1])).startswith("ping from")
    # a second pod with the same name is still refused: the names were recovered
    with pytest.raises(grpc.RpcError) as err:
        crib.run_pod(
            pb.PodSandboxConfig(
                metadata=crib.status(pods[0]).status.metadata,
                linux=pb.LinuxPodSandboxConfig(cgroup_parent=crib.cgroup_parent),
            )
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for sandbox_id in pods:
        crib.stop_pod(sandbox_id)
        crib.remove_pod(sandbox_id)
    assert crib.network.leases() == []


def test_pause_killed_then_stop_and_remove_clean_up(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    info = crib.info(sandbox_id)
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_NOTREADY)
    assert "exited" in crib.info(sandbox_id)["message"]
    assert crib.network.leases() != []  # the IP is held until StopPodSandbox
    crib.stop_pod(sandbox_id)  # DEL through the pinned netns
    assert crib.network.leases() == []
    assert os.listdir(f"/sys/class/net/{crib.network.bridge}/brif") == []
    crib.remove_pod(sandbox_id)
    assert not os.path.exists(info["namespaces"]["net"])


def test_pause_killed_while_crib_is_down(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    pid = crib.info(sandbox_id)["pid"]
    crib.daemon.kill()
    os.kill(pid, signal.SIGKILL)
    crib.daemon.start()
    status = crib.status(sandbox_id).status
    assert status.state == pb.PodSandboxState.SANDBOX_NOTREADY
    assert "pause process is gone" in crib.info(sandbox_id)["message"]
    crib.remove_pod(sandbox_id)
    assert crib.network.leases() == []


def test_netns_gone_as_after_a_reboot_still_releases_the_ip(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    info = crib.info(sandbox_id)
    crib.daemon.kill()
    os.kill(info["pid"], signal.SIGKILL)
    for pin in info["namespaces"].values():  # /run is gone after a reboot
        subprocess.run(["umount", "-l", pin], check=True)
        os.unlink(pin)
    crib.daemon.start()
    assert crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_NOTREADY
    assert crib.network.leases() != []
    crib.stop_pod(sandbox_id)  # CNI DEL with CNI_NETNS="" (user-asks #1, #3)
    assert crib.network.leases() == []
    crib.remove_pod(sandbox_id)


def test_startup_releases_leaked_attachments_and_sweeps_orphans(crib: PodCrib) -> None:
    sandbox_id = crib.run_pod()
    info = crib.info(sandbox_id)
    crib.daemon.kill()
    os.kill(info["pid"], signal.SIGKILL)
    # The record is gone (as if crib died in the middle of RemovePodSandbox after
    # deleting it), but the pins, the run dir's shm and the IP lease are still there.
    shutil.rmtree(os.path.join(crib.daemon.root, "sandboxes", sandbox_id))
    assert crib.network.leases() != []
    assert mounts_under(info["runDir"]) != []
    crib.daemon.start()
    assert crib.list_pods() == []
    assert crib.network.leases() == []  # cni gc: DEL from the cached attachment
    assert os.listdir(os.path.join(crib.daemon.root, "cni", "results")) == []
    assert mounts_under(crib.base_dir) == []
    assert not os.path.exists(info["runDir"])
    assert "released 1 leaked cni attachment" in crib.daemon.log()


def slow_network(record_dir: str, sleep_s: float) -> dict[str, object]:
    return {"extra_plugins": [{"type": "cpod-test", "recordDir": record_dir, "sleepS": sleep_s}]}


@pytest.fixture
def record_dir() -> Iterator[str]:
    path = f"/tmp/cpod-rec-{os.urandom(4).hex()}"
    os.makedirs(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_kill_9_in_the_middle_of_run_pod_sandbox(handler: str, record_dir: str) -> None:
    with pod_crib(handler, network=slow_network(record_dir, 3)) as crib:
        config = crib.pod_config("interrupted")
        failed: list[BaseException] = []

        def run() -> None:
            try:
                crib.run_pod(config)
            except grpc.RpcError as err:
                failed.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        # Wait until the chain reached the slow plugin: bridge ADD has leased an IP.
        wait_for(lambda: os.path.exists(os.path.join(record_dir, "calls.jsonl")))
        assert crib.network.leases() != []
        crib.daemon.kill()
        thread.join()
        assert failed
        time.sleep(3)  # let the orphaned plugin finish
        crib.daemon.start()
        [item] = crib.list_pods()
        assert item.state == pb.PodSandboxState.SANDBOX_NOTREADY
        assert "being created" in crib.info(item.id)["message"]
        crib.network.extra_plugins.clear()  # later calls need not wait
        crib.write_conflist()
        crib.stop_pod(item.id)
        assert crib.network.leases() == []  # the DEL found what the cut ADD left
        crib.remove_pod(item.id)


def test_retry_after_deadline_gets_the_sandbox_being_made(handler: str, record_dir: str) -> None:
    with pod_crib(handler, network=slow_network(record_dir, 2)) as crib:
        # Retry while the first creation is still in flight: the retry waits for it.
        config = crib.pod_config("slow")
        with pytest.raises(grpc.RpcError) as err:
            crib.run_pod(config, timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        sandbox_id = crib.run_pod(config)
        assert crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_READY
        assert len(crib.list_pods()) == 1
        # Retry after the abandoned creation finished: the finished sandbox is handed over.
        other = crib.pod_config("slow-2")
        with pytest.raises(grpc.RpcError) as err:
            crib.run_pod(other, timeout=0.5)
        wait_for(lambda: len(crib.list_pods()) == 2)
        wait_for(
            lambda: any(
                p.state == pb.PodSandboxState.SANDBOX_READY and p.metadata.name == "slow-2"
                for p in crib.list_pods()
            )
        )
        second = crib.run_pod(other)
        assert second in {p.id for p in crib.list_pods()}
        assert second != sandbox_id
        # Once handed over, the name is reserved as usual.
        with pytest.raises(grpc.RpcError) as err:
            crib.run_pod(other)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with open(os.path.join(record_dir, "calls.jsonl")) as f:
            adds = [json.loads(line) for line in f]
        assert [a["command"] for a in adds].count("ADD") == 2  # each pod was made once


def test_pod_of_a_handler_removed_from_the_config_can_still_go(handler: str) -> None:
    with pod_crib(handler, runtimes={"cpod-alias": {"path": runtime_binary(handler)}}) as crib:
        config = crib.pod_config("orphaned-handler")
        sandbox_id = (
            crib.runtime()
            .RunPodSandbox(pb.RunPodSandboxRequest(config=config, runtime_handler="cpod-alias"))
            .pod_sandbox_id
        )
        pid = crib.info(sandbox_id)["pid"]
        crib.daemon.stop()
        crib.daemon.config["runtimes"] = {"cpod-alias": None}
        crib.daemon.start()
        assert crib.status(sandbox_id).status.state == pb.PodSandboxState.SANDBOX_READY
        crib.remove_pod(sandbox_id)
        assert crib.list_pods() == []
        assert crib.network.leases() == []
        assert proc.state(pid) in (None, "Z")
