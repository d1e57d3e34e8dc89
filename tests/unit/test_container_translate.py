"""Container records as CRI messages: ListContainers items and filters, ContainerStatus,
stop signals as CRI enums, verbose info."""

from __future__ import annotations

import json
import pathlib
import signal

from cri.api import api_pb2 as pb
from cri.containers import translate
from cri.containers.records import ContainerState, ContainerStatus, Process
from cri.rpc.container_list import matches
from cri.store import Record
from tests.unit.test_container_records import metadata

IMAGE_ID = "sha256:" + "a" * 64


def record(
    state: ContainerState = ContainerState.RUNNING, **meta: object
) -> translate.ContainerRecord:
    config = {
        "metadata": {"name": "app", "attempt": 1},
        "image": {"image": IMAGE_ID, "user_specified_image": "busybox:1"},
        "mounts": [{"container_path": "/data", "host_path": "/srv", "readonly": True}],
    }
    return Record(
        "c" * 64,
        metadata(config=config, **meta),
        ContainerStatus(
            state,
            init=Process(42, 1),
            started_at_ns=200,
            uid=1000,
            gid=1000,
            supplemental_groups=(1000, 2000),
            stop_signal=int(signal.SIGQUIT),
            resources={"memory_limit_in_bytes": "16777216", "cpu_shares": "2"},
        ),
    )


def test_container_item() -> None:
    item = translate.container(record())
    assert item.id == "c" * 64
    assert item.pod_sandbox_id == "s" * 64
    assert item.image_ref == item.image_id == IMAGE_ID
    assert item.image.image == IMAGE_ID
    assert item.image.user_specified_image == "busybox:1"
    assert item.state == pb.ContainerState.CONTAINER_RUNNING
    assert item.created_at == 123


def test_container_status() -> None:
    status = translate.container_status(record())
    assert status.metadata.name == "app"
    assert status.metadata.attempt == 1
    assert status.started_at == 200
    assert status.image_id == IMAGE_ID
    assert [m.host_path for m in status.mounts] == ["/srv"]
    assert status.mounts[0].readonly
    assert status.log_path == "/var/log/pods/x/app/1.log"
    assert status.resources.linux.memory_limit_in_bytes == 16 << 20
    assert status.resources.linux.cpu_shares == 2
    assert list(status.user.linux.supplemental_groups) == [1000, 2000]
    assert status.stop_signal == pb.Signal.SIGQUIT
    assert translate.container_status(record(ContainerState.UNKNOWN)).state == (
        pb.ContainerState.CONTAINER_UNKNOWN
    )


def test_signals_as_cri_enum() -> None:
    assert translate.cri_signal(int(signal.SIGTERM)) == pb.Signal.SIGTERM
    assert translate.cri_signal(int(signal.SIGRTMIN) + 3) == pb.Signal.SIGRTMINPLUS3
    assert translate.cri_signal(int(signal.SIGRTMAX) - 2) == pb.Signal.SIGRTMAXMINUS2
    assert translate.cri_signal(int(signal.SIGRTMAX)) == pb.Signal.SIGRTMAX
    assert translate.cri_signal(200) == pb.Signal.RUNTIME_DEFAULT


def test_list_filter() -> None:
    item = translate.container(record())
    assert matches(item, pb.ContainerFilter())
    assert matches(item, pb.ContainerFilter(id="ccc", pod_sandbox_id="sss"))
    assert not matches(item, pb.ContainerFilter(id="d"))
    assert not matches(item, pb.ContainerFilter(pod_sandbox_id="x"))
    running = pb.ContainerStateValue(state=pb.ContainerState.CONTAINER_RUNNING)
    exited = pb.ContainerStateValue(state=pb.ContainerState.CONTAINER_EXITED)
    assert matches(item, pb.ContainerFilter(state=running))
    assert not matches(item, pb.ContainerFilter(state=exited))
    assert matches(item, pb.ContainerFilter(label_selector={"l": "v"}))
    assert not matches(item, pb.ContainerFilter(label_selector={"l": "w"}))


def test_verbose_info_reads_the_spec(tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": ["sh"]}}))
    info = json.loads(translate.verbose_info(record(bundle_dir=str(tmp_path)))["info"])
    assert info["pid"] == 42
    assert info["runtimeSpec"] == {"process": {"args": ["sh"]}}
    gone = json.loads(translate.verbose_info(record(bundle_dir=str(tmp_path / "x")))["info"])
    assert gone["runtimeSpec"] is None
