"""The container events hub on real record stores: what an event carries, fan-out to
several subscribers in order, a slow subscriber losing events (counted) and its stream
ending with RESOURCE_EXHAUSTED while the others go on, shutdown ending every stream."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from common.errors import ErrorKind
from cri.api import api_pb2 as pb
from cri.containers.manager import new_container_store
from cri.containers.records import ContainerState, ContainerStatus
from cri.events import ContainerEvents, EventQueueOverflowError
from cri.pods.manager import new_sandbox_store
from cri.pods.records import SandboxState, SandboxStatus
from tests.fakes.records import container_metadata, sandbox_metadata


def stores(tmp_path: pathlib.Path) -> ContainerEvents:
    sandboxes = new_sandbox_store(str(tmp_path))
    containers = new_container_store(str(tmp_path))
    sandboxes.create(
        "s1", sandbox_metadata(), SandboxStatus(SandboxState.CREATING).moved_to(SandboxState.READY)
    )
    containers.create("c1", container_metadata("s1"), ContainerStatus(ContainerState.CREATED))
    return ContainerEvents(containers, sandboxes, queue_size=3)


async def take(subscription_events: object, count: int) -> list[pb.ContainerEventResponse]:
    found = []
    async for event in subscription_events:  # type: ignore[attr-defined]
        found.append(event)
        if len(found) == count:
            break
    return found


def test_event_carries_pod_and_container_statuses(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        hub = stores(tmp_path)
        sub = hub.subscribe()
        hub.on_container_event("c1", "created")
        (event,) = await take(sub.events(), 1)
        assert event.container_id == "c1"
        assert event.container_event_type == pb.ContainerEventType.CONTAINER_CREATED_EVENT
        assert event.created_at > 0
        assert event.pod_sandbox_status.id == "s1"
        assert event.pod_sandbox_status.metadata.uid  # kubelet keys its cache by the uid
        assert event.pod_sandbox_status.state == pb.PodSandboxState.SANDBOX_READY
        assert [(s.id, s.state) for s in event.containers_statuses] == [
            ("c1", pb.ContainerState.CONTAINER_CREATED)
        ]

    asyncio.run(scenario())


def test_deleted_container_still_names_its_pod(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        hub = stores(tmp_path)
        hub.prime()
        sub = hub.subscribe()
        hub.containers.delete("c1")
        hub.on_container_event("c1", "deleted")
        sandbox = hub.sandboxes.require("s1")
        hub.on_sandbox_event(sandbox, "deleted")
        first, second = await take(sub.events(), 2)
        assert first.container_event_type == pb.ContainerEventType.CONTAINER_DELETED_EVENT
        assert first.pod_sandbox_status.id == "s1"
        assert not first.containers_statuses
        assert second.container_id == "s1"  # the sandbox's own event

    asyncio.run(scenario())


def test_every_subscriber_sees_every_event_in_order(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        hub = stores(tmp_path)
        subs = [hub.subscribe() for _ in range(3)]
        store = hub.containers
        for event, state in (
            ("started", ContainerState.RUNNING),
            ("stopped", ContainerState.EXITED),
        ):
            store.update_status("c1", lambda old, s=state: old.moved_to(s))
            hub.on_container_event("c1", event)
        for sub in subs:
            got = await take(sub.events(), 2)
            assert [e.container_event_type for e in got] == [
                pb.ContainerEventType.CONTAINER_STARTED_EVENT,
                pb.ContainerEventType.CONTAINER_STOPPED_EVENT,
            ]
            assert [e.containers_statuses[0].state for e in got] == [
                pb.ContainerState.CONTAINER_RUNNING,
                pb.ContainerState.CONTAINER_EXITED,
            ]
        assert hub.dropped_total == 0

    asyncio.run(scenario())


def test_slow_subscriber_loses_events_and_its_stream_ends(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        hub = stores(tmp_path)
        slow, fast = hub.subscribe(), hub.subscribe()
        fast_events = fast.events()
        got = []
        for _ in range(5):  # the queues hold 3
            hub.on_container_event("c1", "created")
            got += await take(fast_events, 1)  # the fast one keeps up
        assert len(got) == 5
        assert hub.dropped_total == 2
        delivered: list[pb.ContainerEventResponse] = []

        async def drain() -> None:
            async for event in slow.events():
                delivered.append(event)

        with pytest.raises(EventQueueOverflowError) as err:
            await drain()
        assert len(delivered) == 3  # what was queued comes first
        assert err.value.kind is ErrorKind.RESOURCE_EXHAUSTED
        assert "lost 2" in str(err.value)
        hub.unsubscribe(slow)
        hub.on_container_event("c1", "started")
        assert len(await take(fast_events, 1)) == 1

    asyncio.run(scenario())


def test_no_subscriber_no_work(tmp_path: pathlib.Path) -> None:
    hub = stores(tmp_path)
    hub.on_container_event("c1", "created")
    assert hub.published_total == 0


def test_close_ends_streams(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        hub = stores(tmp_path)
        sub = hub.subscribe()
        hub.on_container_event("c1", "created")
        hub.close()
        assert len([e async for e in sub.events()]) == 1

    asyncio.run(scenario())


def test_unknown_container_is_ignored(tmp_path: pathlib.Path) -> None:
    hub = stores(tmp_path)
    hub.subscribe()
    hub.on_container_event("nope", "deleted")
    assert hub.published_total == 0
