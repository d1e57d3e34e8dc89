"""GetContainerEvents: a stream of container and sandbox lifecycle events (cri.events).

The stream lasts until the client goes away or crib stops; a client too slow to keep up
gets RESOURCE_EXHAUSTED after the events it had queued, and should relist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "GetContainerEvents"


async def handle(
    service: CriService, request: pb.GetEventsRequest
) -> AsyncIterator[pb.ContainerEventResponse]:
    """Every event from now on, in order, with the pod's and its containers' statuses."""
    subscription = service.events.subscribe()
    try:
        async for event in subscription.events():
            yield event
    finally:
        service.events.unsubscribe(subscription)
