"""Container records: the state machine's table and the record files' round trip."""

from __future__ import annotations

import pathlib

import pytest

from cri.containers.manager import new_container_store
from cri.containers.records import (
    TRANSITIONS,
    ContainerMetadata,
    ContainerState,
    ContainerStatus,
    Process,
    check_transition,
)

S = ContainerState


def metadata(**changes: object) -> ContainerMetadata:
    fields: dict[str, object] = {
        "name": "app",
        "attempt": 1,
        "cri_name": "k8s_app_pod_ns_uid_1",
        "sandbox_id": "s" * 64,
        "created_at_ns": 123,
        "runtime_handler": "runc",
        "image_id": "sha256:" + "a" * 64,
        "image_name": "example.com/app:1",
        "labels": {"l": "v"},
        "annotations": {"a": "b"},
        "log_path": "/var/log/pods/x/app/1.log",
        "bundle_dir": "/run/crib/containers/c",
        "persist_dir": "/var/lib/crib/container-exits/c",
        "cgroups_path": "/kubepods/podx/crib-c",
        "tty": False,
        "stdin": True,
        "stdin_once": True,
        "config": {"metadata": {"name": "app", "attempt": 1}},
    }
    fields.update(changes)
    return ContainerMetadata(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.CREATING, S.CREATED),
        (S.CREATING, S.UNKNOWN),
        (S.CREATED, S.RUNNING),
        (S.CREATED, S.EXITED),
        (S.RUNNING, S.EXITED),
        (S.UNKNOWN, S.EXITED),
        (S.EXITED, S.EXITED),
    ],
)
def test_allowed_transitions(old: ContainerState, new: ContainerState) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.RUNNING, S.CREATED),
        (S.EXITED, S.RUNNING),
        (S.CREATING, S.RUNNING),
        (S.CREATED, S.CREATING),
        (S.UNKNOWN, S.RUNNING),
    ],
)
def test_refused_transitions(old: ContainerState, new: ContainerState) -> None:
    with pytest.raises(ValueError, match=f"{old.value} cannot become {new.value}"):
        check_transition(old, new)


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(ContainerState)


def test_moved_to_refuses_and_changes() -> None:
    status = ContainerStatus(S.CREATED)
    running = status.moved_to(S.RUNNING, started_at_ns=5)
    assert running.started_at_ns == 5
    with pytest.raises(ValueError, match="running cannot become created"):
        running.moved_to(S.CREATED)


def test_round_trip_through_the_store(tmp_path: pathlib.Path) -> None:
    store = new_container_store(str(tmp_path))
    status = ContainerStatus(
        S.EXITED,
        init=Process(10, 20),
        conmon=Process(11, 19),
        started_at_ns=1,
        finished_at_ns=2,
        exit_code=137,
        reason="OOMKilled",
        uid=1000,
        gid=1000,
        supplemental_groups=(1000, 2000),
        stop_signal=10,
        seccomp_profile="runtime/default",
        resources={"memory_limit_in_bytes": "16777216"},
    )
    store.create("c" * 64, metadata(), status)
    again = new_container_store(str(tmp_path))
    [record] = again.load()
    assert record.metadata == metadata()
    assert record.status == status
