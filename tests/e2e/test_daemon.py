"""The foundation, as kubelet and an operator see it: Version, Status, RuntimeConfig,
UNIMPLEMENTED for what is not built, locking, restarts and draining."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.daemon import CribDaemon, running_crib

pytestmark = pytest.mark.e2e


def conditions(status: pb.StatusResponse) -> dict[str, pb.RuntimeCondition]:
    return {c.type: c for c in status.status.conditions}


def test_version(crib: CribDaemon) -> None:
    version = crib.runtime().Version(pb.VersionRequest(version="v1"))
    assert version.version == "0.1.0"
    assert version.runtime_name == "crib"
    assert version.runtime_version == "0.1.0"
    assert version.runtime_api_version == "v1"


def test_socket_mode_is_0660(crib: CribDaemon) -> None:
    mode = os.stat(crib.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_status_ready_with_config_in_verbose_info(crib: CribDaemon) -> None:
    status = crib.runtime().Status(pb.StatusRequest(verbose=True))
    conds = conditions(status)
    assert set(conds) == {"RuntimeReady", "NetworkReady"}
    for cond in conds.values():
        assert cond.status, f"{cond.type}: {cond.reason}: {cond.message}"
    config = json.loads(status.info["config"])
    assert config["listen"] == crib.socket_path
    assert config["root"] == crib.root
    assert config["cgroup_driver"] == "cgroupfs"
    names = [h.name for h in status.runtime_handlers]
    assert names[0] == ""  # the default handler, as kubelet looks it up
    assert "crib" in names
    assert set(names[1:]) == set(config["runtimes"])
    assert status.HasField("features")


def test_status_without_verbose_has_no_info(crib: CribDaemon) -> None:
    assert dict(crib.runtime().Status(pb.StatusRequest()).info) == {}


def test_conditions_false_carry_reason_and_message() -> None:
    with running_crib(conmon="/nonexistent/conmon") as daemon:
        conf_dir = daemon.config["cni"]["conf_dir"]
        with open(os.path.join(conf_dir, "10-x.conflist"), "w") as f:
            json.dump(
                {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "nosuchplugin"}]}, f
            )
        conds = conditions(daemon.runtime().Status(pb.StatusRequest()))
        runtime, network = conds["RuntimeReady"], conds["NetworkReady"]
        assert not runtime.status
        assert runtime.reason
        assert "/nonexistent/conmon" in runtime.message
        assert not network.status
        assert network.reason == "NetworkPluginNotReady"
        assert "nosuchplugin" in network.message


def test_runtime_config_reports_cgroupfs(crib: CribDaemon) -> None:
    response = crib.runtime().RuntimeConfig(pb.RuntimeConfigRequest())
    assert response.HasField("linux")
    assert response.linux.cgroup_driver == pb.CgroupDriver.CGROUPFS


def update_pod_cidr(crib: CribDaemon, pod_cidr: str) -> None:
    crib.runtime().UpdateRuntimeConfig(
        pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=pod_cidr))
        )
    )


def reported_pod_cidr(crib: CribDaemon) -> str:
    info = crib.runtime().Status(pb.StatusRequest(verbose=True)).info
    return str(json.loads(info["podCIDR"]))


def test_update_runtime_config_records_pod_cidr(crib: CribDaemon) -> None:
    update_pod_cidr(crib, "10.244.1.0/24")
    assert reported_pod_cidr(crib) == "10.244.1.0/24"
    update_pod_cidr(crib, "")  # empty changes nothing
    assert reported_pod_cidr(crib) == "10.244.1.0/24"
    with pytest.raises(grpc.RpcError) as err:
        update_pod_cidr(crib, "10.244.1.0/33")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10.244.1.0/33" in err.value.details()


@pytest.mark.parametrize(
    ("service", "rpc", "request_type"),
    [
        ("runtime", "CheckpointContainer", pb.CheckpointContainerRequest),
    ],
)
def test_unbuilt_rpc_is_unimplemented_naming_it(
    crib: CribDaemon, service: str, rpc: str, request_type: type
) -> None:
    stub = crib.runtime() if service == "runtime" else crib.images()
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, rpc)(request_type())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert rpc in err.value.details()


def test_stream_of_nothing_ends_at_once(crib: CribDaemon) -> None:
    """A Stream* list with no items sends no response, just the end of the stream."""
    assert list(crib.images().StreamImages(pb.StreamImagesRequest(), timeout=10)) == []
    assert list(crib.runtime().StreamPodSandboxes(pb.StreamPodSandboxesRequest(), timeout=10)) == []


def test_accepts_messages_over_the_4mib_grpc_default(crib: CribDaemon) -> None:
    big = pb.RunPodSandboxRequest(config=pb.PodSandboxConfig(annotations={"big": "x" * (12 << 20)}))
    with pytest.raises(grpc.RpcError) as err:
        crib.runtime().RunPodSandbox(big)
    # Refused by the handler (no metadata), not by the transport's message limit.
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.metadata is required" in err.value.details()


def test_second_crib_on_same_state_refused_naming_first_pid(crib: CribDaemon) -> None:
    assert crib.process is not None
    second = crib.spawn()
    code = second.wait(timeout=30)
    assert code != 0
    assert f"pid {crib.process.pid}" in crib.log()
    # The first one is unharmed.
    crib.runtime().Version(pb.VersionRequest())


def test_kill_9_then_restart_same_socket_same_records() -> None:
    with running_crib() as daemon:
        update_pod_cidr(daemon, "10.244.7.0/24")
        daemon.kill()
        assert os.path.exists(daemon.socket_path)  # the stale socket is left behind
        daemon.start()
        assert reported_pod_cidr(daemon) == "10.244.7.0/24"
        assert daemon.runtime().Version(pb.VersionRequest()).runtime_name == "crib"


def test_sigterm_exits_0_and_removes_socket() -> None:
    with running_crib() as daemon:
        assert daemon.stop() == 0
        assert not os.path.exists(daemon.socket_path)
        assert "crib stopped" in daemon.log()
        daemon.start()  # and it comes back with its records
        assert daemon.runtime().Version(pb.VersionRequest()).runtime_name == "crib"


def test_sigint_drains_too() -> None:
    with running_crib() as daemon:
        assert daemon.process is not None
        daemon.close_channel()
        daemon.process.send_signal(signal.SIGINT)
        assert daemon.process.wait(timeout=30) == 0
        daemon.process = None


def test_unknown_record_version_refuses_start() -> None:
    daemon = CribDaemon()
    try:
        os.makedirs(daemon.root)
        with open(os.path.join(daemon.root, "runtime-config.json"), "w") as f:
            json.dump({"version": 99, "pod_cidr": "10.0.0.0/8"}, f)
        process = daemon.spawn()
        assert process.wait(timeout=30) != 0
        assert "unknown version 99" in daemon.log()
    finally:
        daemon.cleanup()


def test_rpcs_logged_with_duration(crib: CribDaemon) -> None:
    crib.runtime().Version(pb.VersionRequest())
    deadline = time.monotonic() + 5
    while "Version ok in" not in crib.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Version ok in" in crib.log()
