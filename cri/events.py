"""Container events for GetContainerEvents (kubelet's evented PLEG, KEP-3386).

The lifecycle code calls listeners as things happen; each becomes one event carrying the
pod's PodSandboxStatus and the statuses of all its containers as they are right then
(kubelet replaces its cached pod status with them, stamped with `created_at`):

    ContainerManager ─("created"|"started"|"stopped"|"deleted")─┐
    PodManager ─(same, container_id = the sandbox id)───────────┤
                                                                 ▼
                                                    ContainerEvents.publish
                                   ┌───────────────────┬─────────┴─────────┐
                             queue (bounded)     queue (bounded)     queue (bounded)
                                   ▼                   ▼                   ▼
                         GetContainerEvents stream, one per subscriber (kubelet, crictl)

Events are built only while someone listens. Publishing never waits: a subscriber whose
queue is full (it stopped reading) loses the event; the loss is counted
(`dropped_total`, the Prometheus crib_containers_events_dropped_total, like CRI-O's
containers_events_dropped_total) and logged, and that subscriber's stream then ends with
RESOURCE_EXHAUSTED once it has read what was queued, so it knows its view is stale and
relists (kubelet's evented PLEG relists and reconnects when the stream fails). The other
subscribers see every event, in order.

Sandbox events use the sandbox id as container_id, as CRI-O (the infra container) and
containerd do: kubelet drops its cached pod only on the DELETED event whose id is the
sandbox's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from common.errors import ResourceExhaustedError
from cri.api import api_pb2 as pb
from cri.containers import translate as container_translate
from cri.containers.records import ContainerMetadata, ContainerState, ContainerStatus
from cri.pods import translate as sandbox_translate
from cri.pods.records import SandboxMetadata, SandboxStatus
from cri.store import Record, RecordStore

log = logging.getLogger("crib.events")

# kubelet's evented PLEG buffers 1000 events (plegChannelCapacity); a subscriber may fall
# as far behind before it loses one.
QUEUE_SIZE = 1000

EVENT_TYPES = {
    "created": pb.ContainerEventType.CONTAINER_CREATED_EVENT,
    "started": pb.ContainerEventType.CONTAINER_STARTED_EVENT,
    "stopped": pb.ContainerEventType.CONTAINER_STOPPED_EVENT,
    "deleted": pb.ContainerEventType.CONTAINER_DELETED_EVENT,
}

ContainerRecord = Record[ContainerMetadata, ContainerStatus]
SandboxRecord = Record[SandboxMetadata, SandboxStatus]

_CLOSED = None


class EventQueueOverflowError(ResourceExhaustedError):
    """A subscriber fell too far behind and lost events."""


class Subscription:
    """One GetContainerEvents stream's queue."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[pb.ContainerEventResponse | None] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, event: pb.ContainerEventResponse) -> bool:
        """Queue `event` without waiting; False when the queue is full (the event is lost)."""
        if self.dropped:
            self.dropped += 1  # the stream is ending anyway; nothing more goes in
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = 1
            return False
        return True

    def close(self) -> None:
        """End the stream after what is queued (daemon shutdown)."""
        try:
            self.queue.put_nowait(_CLOSED)
        except asyncio.QueueFull:
            self.dropped = self.dropped or 1

    async def events(self) -> AsyncIterator[pb.ContainerEventResponse]:
        """The events in order; raises EventQueueOverflowError after the queued ones when
        events were lost."""
        while True:
            if self.dropped and self.queue.empty():
                raise EventQueueOverflowError(
                    f"container events: this subscriber fell {QUEUE_SIZE} events behind and"
                    f" lost {self.dropped}; list containers and subscribe again"
                )
            event = await self.queue.get()
            if event is _CLOSED:
                return
            yield event


class ContainerEvents:
    """Builds events from the stores and fans them out to the subscribers."""

    def __init__(
        self,
        containers: RecordStore[ContainerMetadata, ContainerStatus],
        sandboxes: RecordStore[SandboxMetadata, SandboxStatus],
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.queue_size = queue_size
        self.subscribers: set[Subscription] = set()
        self.dropped_total = 0
        self.published_total = 0
        # The sandbox of each container, for its DELETED event (its record is gone then).
        self._sandbox_of: dict[str, str] = {}

    def prime(self) -> None:
        """Learn the sandbox of every loaded container (after start-up recovery)."""
        for record in self.containers.list():
            self._sandbox_of[record.record_id] = record.metadata.sandbox_id

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """A new subscriber; call `unsubscribe` when its stream ends."""
        subscription = Subscription(self.queue_size)
        self.subscribers.add(subscription)
        log.info("container events: subscriber added (%d now)", len(self.subscribers))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscriber."""
        if subscription in self.subscribers:
            self.subscribers.discard(subscription)
            log.info("container events: subscriber gone (%d left)", len(self.subscribers))

    def close(self) -> None:
        """End every stream (daemon shutdown: streams must not hold up the drain)."""
        for subscription in list(self.subscribers):
            subscription.close()

    # -- publishing ------------------------------------------------------------------------------

    def on_container_event(self, container_id: str, event: str) -> None:
        """ContainerManager listener."""
        record = self.containers.get(container_id)
        if record is not None:
            self._sandbox_of[container_id] = record.metadata.sandbox_id
        sandbox_id = self._sandbox_of.get(container_id)
        if event == "deleted":
            self._sandbox_of.pop(container_id, None)
        if not self.subscribers or sandbox_id is None:
            return
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            log.debug("container events: no sandbox %s for %s %s", sandbox_id, event, container_id)
            return
        self.publish(self.build(container_id, event, sandbox))

    def on_sandbox_event(self, sandbox: SandboxRecord, event: str) -> None:
        """PodManager listener (`sandbox` is the record as of the event; for "deleted" the
        last one before removal)."""
        if self.subscribers:
            self.publish(self.build(sandbox.record_id, event, sandbox))

    def build(
        self, object_id: str, event: str, sandbox: SandboxRecord
    ) -> pb.ContainerEventResponse:
        """The event with the pod's status and its containers' statuses right now."""
        containers = sorted(
            (
                r
                for r in self.containers.list()
                if r.metadata.sandbox_id == sandbox.record_id
                and r.status.state is not ContainerState.CREATING
            ),
            key=lambda r: r.metadata.created_at_ns,
        )
        return pb.ContainerEventResponse(
            container_id=object_id,
            container_event_type=EVENT_TYPES[event],
            created_at=time.time_ns(),
            pod_sandbox_status=sandbox_translate.pod_sandbox_status(sandbox),
            containers_statuses=[container_translate.container_status(r) for r in containers],
        )

    def publish(self, event: pb.ContainerEventResponse) -> None:
        """Queue `event` for every subscriber, never waiting."""
        self.published_total += 1
        for subscription in list(self.subscribers):
            if subscription.offer(event):
                continue
            self.dropped_total += 1
            if subscription.dropped == 1:
                log.warning(
                    "container events: a subscriber is %d events behind; dropping its events"
                    " and ending its stream (it must relist)",
                    self.queue_size,
                )
