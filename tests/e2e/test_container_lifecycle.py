"""Containers over gRPC, as kubelet drives them: create, start, status, list, stop, remove;
exit codes and reasons, CRI logs, stop signals and timeouts, OOM, ExecSync, updates, log
reopening, the pod hook, and that a failed create leaves nothing behind."""

from __future__ import annotations

import concurrent.futures
import glob
import os
import secrets
import socket
import stat
import time

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e import containers
from tests.e2e.containers import CtrCrib, log_text, parse_log, wait_for
from tests.e2e.pods import mounts_under

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_ctr_leaks")]

# The module's fixtures (tests/e2e/containers.py): a registry with the test images, a crib
# per handler, the cctr leak check.
registry = containers.registry
crib = containers.crib
no_ctr_leaks = containers.no_ctr_leaks

CREATED = pb.ContainerState.CONTAINER_CREATED
RUNNING = pb.ContainerState.CONTAINER_RUNNING
EXITED = pb.ContainerState.CONTAINER_EXITED
SLEEP = ["sleep", "1000"]


def test_lifecycle_status_list_stop_remove(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    config = crib.config(
        "web",
        SLEEP,
        labels={"app": "web"},
        annotations={"note": "kept"},
        mounts=[pb.Mount(container_path="/data", host_path=os.path.join(crib.base_dir, "data"))],
    )
    container_id = crib.create(sandbox_id, pod, config)
    assert len(container_id) == 64
    status = crib.status(container_id).status
    assert status.state == CREATED
    assert status.metadata.name == "web"
    assert dict(status.labels) == {"app": "web"}
    assert dict(status.annotations) == {"note": "kept"}
    assert status.created_at > 0
    assert status.started_at == 0
    image = crib.images().ImageStatus(pb.ImageStatusRequest(image=config.image)).image
    assert status.image_ref == image.id
    assert status.image_id == image.id
    assert status.image.image == config.image.image
    assert status.log_path == os.path.join(pod.log_directory, "web.log")
    assert [m.container_path for m in status.mounts] == ["/data"]
    assert os.path.isdir(os.path.join(crib.base_dir, "data"))  # missing host path created
    assert status.user.linux.uid == 0
    assert status.stop_signal == pb.Signal.SIGTERM
    [listed] = crib.list(id=container_id)
    assert listed.pod_sandbox_id == sandbox_id
    assert listed.image_id == image.id
    assert listed.state == CREATED

    crib.start(container_id)
    status = crib.wait_state(container_id, RUNNING)
    assert status.started_at >= status.created_at
    info = crib.info(container_id)
    pid = info["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"1000"]
    assert info["runtimeSpec"]["process"]["args"] == SLEEP
    assert info["sandboxID"] == sandbox_id

    with pytest.raises(grpc.RpcError) as err:
        crib.start(container_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    crib.stop(container_id, 10)
    status = crib.status(container_id).status
    assert status.state == EXITED
    assert status.exit_code == 128 + 15  # sleep died of the SIGTERM
    assert status.reason == "Error"
    assert status.finished_at >= status.started_at
    crib.stop(container_id, 10)  # idempotent
    crib.remove(container_id)
    crib.remove(container_id)  # idempotent
    with pytest.raises(grpc.RpcError) as err:
        crib.status(container_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert crib.list(id=container_id) == []
    crib.pods.remove_pod(sandbox_id)


def test_unknown_ids(crib: CtrCrib) -> None:
    crib.stop("0" * 64)
    crib.remove("0" * 64)
    for call in (lambda: crib.status("0" * 64), lambda: crib.start("0" * 64)):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_create_refusals_name_the_problem(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    cases = [
        ("0" * 64, crib.config("a", SLEEP), grpc.StatusCode.NOT_FOUND, "0" * 64),
        (
            sandbox_id,
            pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="b"),
                image=pb.ImageSpec(image=f"{crib.registry.host}/cctr/absent:1"),
            ),
            grpc.StatusCode.NOT_FOUND,
            "cctr/absent:1",
        ),
        (sandbox_id, pb.ContainerConfig(), grpc.StatusCode.INVALID_ARGUMENT, "metadata.name"),
    ]
    for target, config, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            crib.create(target, pod, config)
        assert err.value.code() == code
        assert text in err.value.details()
    config = crib.config("dup", SLEEP)
    first = crib.create(sandbox_id, pod, config)
    with pytest.raises(grpc.RpcError) as err:
        crib.create(sandbox_id, pod, config)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first in err.value.details()
    crib.pods.stop_pod(sandbox_id)
    with pytest.raises(grpc.RpcError) as err:
        crib.create(sandbox_id, pod, crib.config("late", SLEEP))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    crib.pods.remove_pod(sandbox_id)
    assert crib.list(pod_sandbox_id=sandbox_id) == []


def _bundles(crib: CtrCrib) -> list[str]:
    return glob.glob(os.path.join(crib.pods.daemon.state, "containers", "*"))


def _snapshots(crib: CtrCrib) -> list[str]:
    return glob.glob(os.path.join(crib.pods.daemon.root, "images", "snapshots", "*"))


def test_failed_create_leaves_nothing(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    bad_user = crib.config(
        "bad",
        SLEEP,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(run_as_username="nosuchuser")
        ),
    )
    bad_binary = crib.config("bad", ["/no/such/binary"])
    for config, code in (
        (bad_user, grpc.StatusCode.INVALID_ARGUMENT),
        (bad_binary, None),
    ):
        with pytest.raises(grpc.RpcError) as err:
            crib.create(sandbox_id, pod, config)
        if code is not None:
            assert err.value.code() == code
            assert "nosuchuser" in err.value.details()
        else:
            assert "/no/such/binary" in err.value.details()
        assert crib.list(pod_sandbox_id=sandbox_id) == []
        assert _bundles(crib) == []
        assert _snapshots(crib) == []
        assert [m for m in mounts_under(crib.base_dir) if "/containers/" in m] == []
        cgroups = glob.glob(f"/sys/fs/cgroup/*/{crib.pods.cgroup_parent.lstrip('/')}/crib-*")
        # only the pause's leaf is left
        assert {os.path.basename(c) for c in cgroups} == {f"crib-{sandbox_id}"}
    # the name was freed: the same name with a good config works
    container_id = crib.run(sandbox_id, pod, crib.config("bad", SLEEP))
    crib.wait_state(container_id, RUNNING)
    crib.pods.remove_pod(sandbox_id)
    assert _bundles(crib) == []
    assert _snapshots(crib) == []


def test_exit_codes_and_reasons(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    ok = crib.run(sandbox_id, pod, crib.config("ok", ["true"]))
    bad = crib.run(sandbox_id, pod, crib.config("bad", ["sh", "-c", "exit 3"]))
    for container_id, code, reason in ((ok, 0, "Completed"), (bad, 3, "Error")):
        status = crib.wait_state(container_id, EXITED, timeout_s=10)
        assert status.exit_code == code
        assert status.reason == reason
        assert status.finished_at >= status.started_at > 0
    with pytest.raises(grpc.RpcError) as err:
        crib.exec_sync(ok, ["true"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    crib.pods.remove_pod(sandbox_id)


def test_cri_log_format(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    script = (
        "echo out; echo err >&2; printf 'no newline'; sleep 0.3; echo ' end';"
        " head -c 20000 /dev/zero | tr '\\0' x; echo"
    )
    config = crib.config("logs", ["sh", "-c", script])
    container_id = crib.run(sandbox_id, pod, config)
    crib.wait_state(container_id, EXITED, timeout_s=20)
    records = parse_log(crib.log_path(pod, config))
    stdout = log_text(records, "stdout")
    assert stdout.startswith("out\nno newline end\n")
    assert stdout.endswith("x" * 20000 + "\n")
    assert log_text(records, "stderr") == "err\n"
    tags = [r.tags for r in records if r.stream == "stdout"]
    assert ("P",) in tags
    assert ("F",) in tags
    # lines longer than a pipe read become several P records ending in one F
    stdout_records = [r for r in records if r.stream == "stdout"]
    first = next(i for i, r in enumerate(stdout_records) if r.content.startswith("x"))
    long_records = stdout_records[first:]
    assert len(long_records) >= 2
    assert all(r.tags == ("P",) for r in long_records[:-1])
    assert long_records[-1].tags == ("F",)
    assert "".join(r.content for r in long_records) == "x" * 20000
    timestamps = [r.timestamp for r in records]
    assert timestamps == sorted(timestamps)
    assert timestamps[0].tzinfo is not None
    crib.pods.remove_pod(sandbox_id)


def test_stop_signals_and_timeout(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    loop = "while true; do sleep 0.1; done"
    ignores = crib.run(
        sandbox_id, pod, crib.config("ignores", ["sh", "-c", f"trap '' TERM; {loop}"])
    )
    handles = crib.run(
        sandbox_id, pod, crib.config("handles", ["sh", "-c", f"trap 'exit 7' TERM; {loop}"])
    )
    image_signal = crib.run(
        sandbox_id,
        pod,
        crib.config("usr1", ["sh", "-c", f"trap 'exit 10' USR1; {loop}"], image="stop-usr1"),
    )
    config_signal = crib.run(
        sandbox_id,
        pod,
        crib.config(
            "usr2",
            ["sh", "-c", f"trap 'exit 12' USR2; {loop}"],
            image="stop-usr1",
            stop_signal=pb.Signal.SIGUSR2,
        ),
    )
    for container_id in (ignores, handles, image_signal, config_signal):
        crib.wait_state(container_id, RUNNING)
    time.sleep(0.3)  # let the shells install their traps
    assert crib.status(image_signal).status.stop_signal == pb.Signal.SIGUSR1
    started = time.monotonic()
    crib.stop(ignores, 2)
    assert time.monotonic() - started >= 2.0  # the grace period was given in full
    assert crib.status(ignores).status.exit_code == 137
    for container_id, code in ((handles, 7), (image_signal, 10), (config_signal, 12)):
        crib.stop(container_id, 30)
        assert crib.status(container_id).status.exit_code == code
    crib.pods.remove_pod(sandbox_id)


def test_oom_killed(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    config = crib.config(
        "oom",
        ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M"],
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20)
        ),
    )
    container_id = crib.run(sandbox_id, pod, config)
    status = crib.wait_state(container_id, EXITED, timeout_s=30)
    assert status.reason == "OOMKilled"
    assert status.exit_code == 137
    assert status.resources.linux.memory_limit_in_bytes == 16 << 20
    crib.pods.remove_pod(sandbox_id)


def test_exec_sync(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    container_id = crib.run(sandbox_id, pod, crib.config("exec", SLEEP))
    crib.wait_state(container_id, RUNNING)
    result = crib.exec_sync(container_id, ["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert (result.stdout, result.stderr, result.exit_code) == (b"out\n", b"err\n", 5)
    # a timeout kills the process and answers -1 "command timed out" (no gRPC error)
    started = time.monotonic()
    result = crib.exec_sync(container_id, ["sleep", "77"], timeout_s=1)
    assert result.exit_code == -1
    assert b"command timed out" in result.stderr
    assert time.monotonic() - started < 30
    # killed and reaped before the answer: not even a zombie is left (critest: pgrep)
    ps = crib.output(container_id, "ps", "-o", "stat,args").splitlines()[1:]
    assert [line for line in ps if "sleep 77" in line or line.lstrip().startswith("Z")] == []
    # a missing binary is the runtime's error, not a hang
    with pytest.raises(grpc.RpcError) as err:
        crib.exec_sync(container_id, ["/no/such/binary"], timeout_s=10)
    assert "/no/such/binary" in err.value.details()
    # output is captured whole up to the cap
    result = crib.exec_sync(container_id, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y"])
    assert result.stdout == b"y" * 300000
    # the exec runs as the container's process does (user, env, cwd)
    assert crib.output(container_id, "sh", "-c", "id -u; pwd").split() == ["0", "/"]
    crib.pods.remove_pod(sandbox_id)


def test_exec_processes_die_with_the_container(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    container_id = crib.run(sandbox_id, pod, crib.config("main", SLEEP))
    crib.wait_state(container_id, RUNNING)
    # a background process started by an exec outlives the exec (shared pod pid namespace)
    crib.output(container_id, "sh", "-c", "sleep 4242 >/dev/null 2>&1 &")
    cgroup = f"/sys/fs/cgroup/pids{crib.pods.cgroup_parent}/crib-{container_id}/cgroup.procs"

    def procs() -> list[str]:
        with open(cgroup) as f:
            return f.read().split()

    assert len(procs()) == 2
    crib.stop(container_id, 5)
    pids = glob.glob("/proc/[0-9]*/cmdline")
    for path in pids:
        try:
            with open(path, "rb") as f:
                assert b"sleep\x004242" not in f.read()
        except (FileNotFoundError, ProcessLookupError):
            pass
    crib.pods.remove_pod(sandbox_id)


def test_update_resources(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    container_id = crib.run(sandbox_id, pod, crib.config("upd", SLEEP))
    crib.wait_state(container_id, RUNNING)
    crib.runtime().UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=container_id,
            linux=pb.LinuxContainerResources(
                memory_limit_in_bytes=64 << 20, cpu_quota=50000, cpu_period=100000
            ),
        )
    )
    leaf = f"{crib.pods.cgroup_parent}/crib-{container_id}"
    with open(f"/sys/fs/cgroup/memory{leaf}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 64 << 20
    with open(f"/sys/fs/cgroup/cpu{leaf}/cpu.cfs_quota_us") as f:
        assert int(f.read()) == 50000
    resources = crib.status(container_id).status.resources.linux
    assert resources.memory_limit_in_bytes == 64 << 20
    assert resources.cpu_quota == 50000
    info = crib.info(container_id)
    assert info["runtimeSpec"]["linux"]["resources"]["memory"]["limit"] == 64 << 20
    crib.stop(container_id)
    with pytest.raises(grpc.RpcError) as err:
        crib.runtime().UpdateContainerResources(
            pb.UpdateContainerResourcesRequest(
                container_id=container_id,
                linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20),
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # UpdatePodSandboxResources: acknowledged for a known pod, NOT_FOUND otherwise
    crib.runtime().UpdatePodSandboxResources(
        pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=sandbox_id,
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20),
        )
    )
    with pytest.raises(grpc.RpcError) as err:
        crib.runtime().UpdatePodSandboxResources(
            pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id="0" * 64)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    crib.pods.remove_pod(sandbox_id)


def test_reopen_log_is_synchronous(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    config = crib.config(
        "rotate", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done"]
    )
    container_id = crib.run(sandbox_id, pod, config)
    path = crib.log_path(pod, config)
    wait_for(lambda: os.path.exists(path) and os.path.getsize(path) > 0)
    os.rename(path, path + ".1")
    crib.runtime().ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=container_id))
    assert os.path.exists(path)  # there the moment the call returns (kubelet checks)
    wait_for(lambda: os.path.getsize(path) > 0)
    size = os.path.getsize(path + ".1")
    time.sleep(0.3)
    assert os.path.getsize(path + ".1") == size  # the old file is no longer written
    records = parse_log(path)
    assert records
    assert records[0].content.startswith("line ")
    crib.stop(container_id)
    with pytest.raises(grpc.RpcError) as err:
        crib.runtime().ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=container_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    crib.pods.remove_pod(sandbox_id)


def test_list_filters(crib: CtrCrib) -> None:
    first, pod1 = crib.run_pod()
    second, pod2 = crib.run_pod()
    a = crib.run(first, pod1, crib.config("a", SLEEP, labels={"app": "x", "v": "1"}))
    b = crib.create(first, pod1, crib.config("b", SLEEP, labels={"app": "x", "v": "2"}))
    c = crib.run(second, pod2, crib.config("c", SLEEP, labels={"app": "y"}))
    crib.wait_state(a, RUNNING)
    ids = {x.id for x in crib.list(label_selector={"app": "x"})}
    assert ids == {a, b}
    running = pb.ContainerStateValue(state=RUNNING)
    assert {x.id for x in crib.list(state=running, label_selector={"app": "x"})} == {a}
    assert {x.id for x in crib.list(pod_sandbox_id=second)} == {c}
    assert {x.id for x in crib.list(pod_sandbox_id=first[:12])} == {a, b}
    assert [x.id for x in crib.list(id=c[:12])] == [c]
    assert crib.status(b[:12]).status.id == b  # unique prefixes work for Status too
    # StopPodSandbox kills the pod's containers; RemovePodSandbox removes them
    crib.pods.stop_pod(first)
    assert {crib.state(x) for x in (a, b)} == {EXITED}
    assert crib.state(c) == RUNNING
    crib.pods.remove_pod(first)
    assert crib.list(pod_sandbox_id=first) == []
    crib.pods.remove_pod(second)


def test_twenty_containers_at_once(crib: CtrCrib) -> None:
    pods = [crib.run_pod() for _ in range(2)]
    crib.image("busybox")

    def make(i: int) -> str:
        sandbox_id, pod = pods[i % 2]
        return crib.run(sandbox_id, pod, crib.config(f"c{i}", SLEEP))

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(make, range(20)))
    assert len(set(ids)) == 20
    for container_id in ids:
        crib.wait_state(container_id, RUNNING)
    pids = {crib.info(c)["pid"] for c in ids}
    assert len(pids) == 20
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(crib.remove, ids))
    assert crib.list() == []
    for sandbox_id, _ in pods:
        crib.pods.remove_pod(sandbox_id)


def test_image_volume_and_read_only_host_mount(crib: CtrCrib) -> None:
    sandbox_id, pod = crib.run_pod()
    host_dir = os.path.join(crib.base_dir, f"ro-{secrets.token_hex(3)}")
    os.makedirs(host_dir)
    with open(os.path.join(host_dir, "f"), "w") as f:
        f.write("host\n")
    config = crib.config(
        "vol",
        SLEEP,
        mounts=[
            pb.Mount(
                container_path="/img",
                image=pb.ImageSpec(image=crib.image("volume")),
                image_sub_path="data",
                readonly=True,
            ),
            pb.Mount(container_path="/ro", host_path=host_dir, readonly=True),
        ],
    )
    container_id = crib.run(sandbox_id, pod, config)
    crib.wait_state(container_id, RUNNING)
    assert crib.output(container_id, "cat", "/img/hello") == "from the image\n"
    volume_id = (
        crib.images()
        .ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=crib.image("volume"))))
        .image.id
    )
    [image_mount] = [
        m for m in crib.status(container_id).status.mounts if m.container_path == "/img"
    ]
    assert image_mount.image.image_ref == volume_id  # KEP 5365
    assert crib.output(container_id, "cat", "/ro/f") == "host\n"
    for path in ("/img/new", "/ro/new"):
        result = crib.exec_sync(container_id, ["touch", path])
        assert result.exit_code != 0
        assert b"Read-only file system" in result.stderr
    crib.pods.remove_pod(sandbox_id)
    assert _snapshots(crib) == []


def test_attach_socket_carries_stdio(crib: CtrCrib) -> None:
    """conmon's attach socket (the streaming Attach will use it): stdin in, stdout out."""
    sandbox_id, pod = crib.run_pod()
    config = crib.config("attach", ["cat"], stdin=True, stdin_once=True)
    container_id = crib.run(sandbox_id, pod, config)
    crib.wait_state(container_id, RUNNING)
    path = os.path.join(crib.pods.daemon.state, "s", container_id, "attach")
    bundle = crib.info(container_id)["bundle"]
    assert stat.S_ISFIFO(os.stat(os.path.join(bundle, "ctl")).st_mode)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.connect(path)
        conn.settimeout(10)
        conn.sendall(b"hello\n")
        packet = conn.recv(8193)
        assert packet == b"\x02hello\n"  # 2 = stdout
        conn.shutdown(socket.SHUT_WR)  # stdin_once: cat sees EOF and exits
    status = crib.wait_state(container_id, EXITED, timeout_s=10)
    assert status.exit_code == 0
    assert log_text(parse_log(crib.log_path(pod, config))) == "hello\n"
    crib.pods.remove_pod(sandbox_id)
