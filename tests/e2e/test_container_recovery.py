"""Containers across crashes: kill -9 crib and restart (running containers stay RUNNING with
the same process, exits that happened meanwhile come from conmon's files, logs continue,
nothing starts twice), a conmon that dies under its container, and a kill in the middle
of creations (nothing half made is left)."""

from __future__ import annotations

import glob
import os
import signal
import threading
import time

import grpc
import pytest

from cri.api import api_pb2 as pb
from sandbox.monitor import proc
from tests.e2e import containers
from tests.e2e.containers import CtrCrib, parse_log, wait_for
from tests.e2e.pods import mounts_under

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_ctr_leaks")]

registry = containers.registry
crib = containers.crib
no_ctr_leaks = containers.no_ctr_leaks

CREATED = pb.ContainerState.CONTAINER_CREATED
RUNNING = pb.ContainerState.CONTAINER_RUNNING
EXITED = pb.ContainerState.CONTAINER_EXITED


def restart(crib: CtrCrib) -> None:
    crib.pods.daemon.kill()
    crib.pods.daemon.start()


def test_kill_9_and_restart(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    data = os.path.join(crib.base_dir, "recovery-data")
    os.makedirs(data, exist_ok=True)
    mounts = [pb.Mount(container_path="/data", host_path=data)]
    ticker = crib.config(
        "ticker",
        [
            "sh",
            "-c",
            "echo start >> /data/starts; i=0;"
            " while true; do i=$((i+1)); echo tick $i; sleep 0.05; done",
        ],
        mounts=mounts,
    )
    runs = crib.run(sandbox_id, pod, ticker)
    quits = crib.run(sandbox_id, pod, crib.config("quits", ["sh", "-c", "sleep 1; exit 4"]))
    waits = crib.create(
        sandbox_id,
        pod,
        crib.config("waits", ["sh", "-c", "echo start >> /data/waits; sleep 1000"], mounts=mounts),
    )
    crib.wait_state(runs, RUNNING)
    pid_runs = crib.info(runs)["pid"]
    pid_quits = crib.info(quits)["pid"]
    started_quits = crib.status(quits).status.started_at
    start_quits = proc.start_time(pid_quits)
    assert start_quits is not None

    crib.pods.daemon.kill()
    # While crib is down: one container exits, the other keeps logging.
    wait_for(lambda: not proc.is_alive(pid_quits, start_quits), timeout_s=10)
    log_path = crib.log_path(pod, ticker)
    size_before = os.path.getsize(log_path)
    time.sleep(0.3)
    assert os.path.getsize(log_path) > size_before  # conmon logs without crib
    crib.pods.daemon.start()

    status = crib.status(runs).status
    assert status.state == RUNNING
    assert crib.info(runs)["pid"] == pid_runs
    status = crib.status(quits).status
    assert status.state == EXITED
    assert status.exit_code == 4
    assert status.reason == "Error"
    assert started_quits < status.finished_at < time.time_ns()
    assert crib.state(waits) == CREATED
    # names survived: the same container name is still taken
    with pytest.raises(grpc.RpcError) as err:
        crib.create(sandbox_id, pod, ticker)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # the created container starts now, once; the running one was not started again
    crib.start(waits)
    crib.wait_state(waits, RUNNING)
    wait_for(lambda: os.path.exists(os.path.join(data, "waits")))
    with open(os.path.join(data, "starts")) as f:
        assert f.read() == "start\n"
    # exits are noticed again after the restart, and logs go on in the same file
    crib.stop(runs, 5)
    status = crib.status(runs).status
    assert status.state == EXITED
    records = parse_log(log_path)
    ticks = [int(r.content.split()[1]) for r in records if r.content.startswith("tick")]
    assert ticks == list(range(1, len(ticks) + 1))  # nothing lost, nothing repeated
    crib.pods.remove_pod(sandbox_id)


def test_conmon_dies_under_its_container(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    stopped = crib.run(sandbox_id, pod, crib.config("stopped", ["sleep", "1000"]))
    exits = crib.run(sandbox_id, pod, crib.config("exits", ["sh", "-c", "sleep 1; exit 6"]))
    for container_id in (stopped, exits):
        crib.wait_state(container_id, RUNNING)
        os.kill(crib.info(container_id)["conmonPid"], signal.SIGKILL)
    # Stop returns once the process is dead even though its monitor is gone (user-asks #5)
    crib.stop(stopped, 5)
    status = crib.status(stopped).status
    assert status.state == EXITED
    assert status.exit_code == 128 + signal.SIGTERM
    # an exit with no monitor is still noticed, with the status crib reaped itself
    status = crib.wait_state(exits, EXITED, timeout_s=15)
    assert status.exit_code == 6
    crib.pods.remove_pod(sandbox_id)


def test_exits_are_noticed_while_crib_runs(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    container_id = crib.run(sandbox_id, pod, crib.config("short", ["sleep", "0.2"]))
    status = crib.wait_state(container_id, EXITED, timeout_s=5)
    assert status.exit_code == 0
    assert status.reason == "Completed"
    crib.pods.remove_pod(sandbox_id)


def test_kill_9_during_creations_leaves_nothing_half_made(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    crib.image("busybox")
    errors: list[Exception] = []
    done: list[str] = []

    def create(i: int) -> None:
        try:
            config = crib.config(f"c{i}", ["sleep", "1000"])
            done.append(crib.create(sandbox_id, pod, config, timeout=30))
        except grpc.RpcError as err:
            errors.append(err)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    # kill once two creations answered: most others are mid-way
    wait_for(lambda: len(done) >= 2, timeout_s=30)
    crib.pods.daemon.kill()
    for thread in threads:
        thread.join()
    crib.pods.daemon.start()
    listed = crib.list(pod_sandbox_id=sandbox_id)
    assert set(done) <= {c.id for c in listed}  # what crib answered for exists
    for container in listed:
        # every container that survived is whole: it can be started and runs
        assert container.state == CREATED
        crib.start(container.id)
        crib.wait_state(container.id, RUNNING)
    state_dir = crib.pods.daemon.state
    bundles = {os.path.basename(p) for p in glob.glob(f"{state_dir}/containers/*")}
    assert bundles == {c.id for c in listed}
    snapshots = glob.glob(os.path.join(crib.pods.daemon.root, "images", "snapshots", "*"))
    assert {os.path.basename(p) for p in snapshots} == {c.id for c in listed}
    rootfs_mounts = [m for m in mounts_under(crib.base_dir) if m.endswith("/rootfs")]
    assert len(rootfs_mounts) == len(listed)
    for container in listed:
        init = crib.info(container.id)["pid"]
        assert proc.start_time(init) is not None
    crib.pods.remove_pod(sandbox_id)
    assert crib.list() == []


def test_retry_after_deadline_gets_the_container_being_made(crib: CtrCrib) -> None:
    """kubelet gives up on a slow CreateContainer and retries with the same name: the retry
    gets the container the first call made, not "name is reserved" (user-asks #4)."""
    sandbox_id, pod = crib.run_pod()
    config = crib.config("slow", ["sleep", "1000"])
    with pytest.raises(grpc.RpcError) as err:
        crib.create(sandbox_id, pod, config, timeout=0.01)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    container_id = crib.create(sandbox_id, pod, config)
    assert crib.state(container_id) == CREATED
    assert [c.id for c in crib.list(pod_sandbox_id=sandbox_id)] == [container_id]
    # once handed over, the name is the container's like any other
    with pytest.raises(grpc.RpcError) as err:
        crib.create(sandbox_id, pod, config)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    crib.pods.remove_pod(sandbox_id)
