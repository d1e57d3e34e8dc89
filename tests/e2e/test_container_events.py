"""GetContainerEvents from the real daemon, per runtime handler: a full lifecycle in
order with the statuses kubelet's evented PLEG reads, an exit seen by conmon, sandbox
events, several subscribers, and one that never reads without holding crib up."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.containers import CtrCrib, registry  # noqa: F401 - fixture
from tests.e2e.observability import PREFIX, TEST_RANGE, obs_crib
from tests.handlers import HANDLERS
from tests.leakcheck import leak_check
from tests.registry import Registry

pytestmark = [pytest.mark.root, pytest.mark.e2e]

E = pb.ContainerEventType
S = pb.ContainerState


@pytest.fixture(scope="module")
def no_leaks() -> Iterator[None]:
    yield from leak_check(PREFIX, TEST_RANGE)


@pytest.fixture(scope="module", params=HANDLERS)
def crib(
    request: pytest.FixtureRequest,
    registry: Registry,  # noqa: F811 - the module fixture
    no_leaks: None,
) -> Iterator[CtrCrib]:
    with obs_crib(request.param, registry) as crib:
        yield crib


class Subscriber:
    """A GetContainerEvents stream read by a thread into a queue."""

    def __init__(self, crib: CtrCrib) -> None:
        self.call = crib.runtime().GetContainerEvents(pb.GetEventsRequest())
        self.events: queue.Queue[pb.ContainerEventResponse] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as err:
            self.error = err

    def next_for(self, object_id: str, timeout_s: float = 30) -> pb.ContainerEventResponse:
        """The next event about `object_id` (others are skipped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no event for {object_id}"
            event = self.events.get(timeout=remaining)
            if event.container_id == object_id:
                return event

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=10)


def wait_subscribed(crib: CtrCrib, subscribers: list[Subscriber]) -> None:
    """The streams are open once an event reaches them: make one (a pod) and drain it."""
    sandbox_id, _ = crib.run_pod()
    for subscriber in subscribers:
        subscriber.next_for(sandbox_id)
    crib.pods.remove_pod(sandbox_id)
    for subscriber in subscribers:
        while subscriber.next_for(sandbox_id).container_event_type != E.CONTAINER_DELETED_EVENT:
            pass


def own_status(event: pb.ContainerEventResponse) -> pb.ContainerStatus | None:
    found = [s for s in event.containers_statuses if s.id == event.container_id]
    return found[0] if found else None


def test_lifecycle_in_order_for_every_subscriber(crib: CtrCrib) -> None:
    """create, start, stop, remove: CREATED, STARTED, STOPPED, DELETED, each carrying the
    pod's status and every container's status as it was then; the same for three
    subscribers while a fourth opened the stream and reads nothing."""
    subscribers = [Subscriber(crib) for _ in range(3)]
    idle = crib.runtime().GetContainerEvents(pb.GetEventsRequest())  # never read
    try:
        wait_subscribed(crib, subscribers)
        sandbox_id, pod_config = crib.run_pod()
        neighbour = crib.run(sandbox_id, pod_config, crib.config("neighbour", ["sleep", "600"]))
        container_id = crib.create(sandbox_id, pod_config, crib.config("app", ["sleep", "600"]))
        crib.start(container_id)
        crib.stop(container_id)
        crib.remove(container_id)
        expected = [
            (E.CONTAINER_CREATED_EVENT, S.CONTAINER_CREATED),
            (E.CONTAINER_STARTED_EVENT, S.CONTAINER_RUNNING),
            (E.CONTAINER_STOPPED_EVENT, S.CONTAINER_EXITED),
            (E.CONTAINER_DELETED_EVENT, None),
        ]
        for subscriber in subscribers:
            events = [subscriber.next_for(container_id) for _ in expected]
            seen = [(e.container_event_type, getattr(own_status(e), "state", None)) for e in events]
            assert seen == expected
            times = [e.created_at for e in events]
            assert times == sorted(times)
            for event in events:
                assert event.pod_sandbox_status.id == sandbox_id
                assert event.pod_sandbox_status.metadata.uid == pod_config.metadata.uid
                assert event.pod_sandbox_status.state == pb.PodSandboxState.SANDBOX_READY
                statuses = {s.id: s.state for s in event.containers_statuses}
                assert statuses[neighbour] == S.CONTAINER_RUNNING
            assert own_status(events[2]).exit_code == 137  # type: ignore[union-attr]
        crib.pods.remove_pod(sandbox_id)
        for subscriber in subscribers:
            kinds = []
            while not kinds or kinds[-1] != E.CONTAINER_DELETED_EVENT:
                kinds.append(subscriber.next_for(sandbox_id).container_event_type)
            assert kinds == [E.CONTAINER_STOPPED_EVENT, E.CONTAINER_DELETED_EVENT]
            assert subscriber.error is None
    finally:
        idle.cancel()
        for subscriber in subscribers:
            subscriber.close()


def test_exit_seen_by_conmon_reaches_the_stream(crib: CtrCrib) -> None:
    subscriber = Subscriber(crib)
    try:
        wait_subscribed(crib, [subscriber])
        sandbox_id, pod_config = crib.run_pod()
        created = subscriber.next_for(sandbox_id)
        assert created.container_event_type == E.CONTAINER_CREATED_EVENT
        assert subscriber.next_for(sandbox_id).container_event_type == E.CONTAINER_STARTED_EVENT
        container_id = crib.run(sandbox_id, pod_config, crib.config("quit", ["sh", "-c", "exit 3"]))
        kinds = [subscriber.next_for(container_id) for _ in range(3)]
        assert [k.container_event_type for k in kinds] == [
            E.CONTAINER_CREATED_EVENT,
            E.CONTAINER_STARTED_EVENT,
            E.CONTAINER_STOPPED_EVENT,
        ]
        stopped = own_status(kinds[2])
        assert stopped is not None
        assert stopped.state == S.CONTAINER_EXITED
        assert stopped.exit_code == 3
        assert stopped.finished_at > 0
        crib.pods.remove_pod(sandbox_id)
    finally:
        subscriber.close()


def test_a_reader_that_stops_does_not_hold_crib_up(crib: CtrCrib) -> None:
    """A subscriber that never reads: crib keeps answering and the others keep getting
    events while it sits there (its events queue up, bounded, on crib's side)."""
    stalled = [crib.runtime().GetContainerEvents(pb.GetEventsRequest()) for _ in range(2)]
    reader = Subscriber(crib)
    try:
        wait_subscribed(crib, [reader])
        sandbox_id, pod_config = crib.run_pod()
        ids = [
            crib.run(sandbox_id, pod_config, crib.config(f"c{i}", ["sleep", "600"]))
            for i in range(5)
        ]
        for container_id in ids:
            assert reader.next_for(container_id).container_event_type == E.CONTAINER_CREATED_EVENT
            assert reader.next_for(container_id).container_event_type == E.CONTAINER_STARTED_EVENT
        crib.runtime().Version(pb.VersionRequest(), timeout=5)
        crib.pods.remove_pod(sandbox_id)
    finally:
        for call in stalled:
            call.cancel()
        reader.close()
