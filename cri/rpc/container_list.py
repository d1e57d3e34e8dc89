"""ListContainers: filters by id (prefix), state, sandbox (prefix) and labels; memory only.

A container still being created is not listed: kubelet's garbage collector must not act
on a CreateContainer in flight.
"""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.containers import translate
from cri.containers.records import ContainerState
from cri.service import CriService

RPC = "ListContainers"


def matches(item: pb.Container, flt: pb.ContainerFilter) -> bool:
    """Whether a container passes every filter that is set."""
    if flt.id and not item.id.startswith(flt.id):
        return False
    if flt.HasField("state") and item.state != flt.state.state:
        return False
    if flt.pod_sandbox_id and not item.pod_sandbox_id.startswith(flt.pod_sandbox_id):
        return False
    return all(item.labels.get(key) == value for key, value in flt.label_selector.items())


def items(service: CriService, flt: pb.ContainerFilter | None) -> list[pb.Container]:
    """Every container matching `flt` (None: all), oldest first (StreamContainers too)."""
    records = sorted(
        (
            r
            for r in service.containers.store.list()
            if r.status.state is not ContainerState.CREATING
        ),
        key=lambda r: r.metadata.created_at_ns,
    )
    found = [translate.container(r) for r in records]
    if flt is not None:
        found = [item for item in found if matches(item, flt)]
    return found


async def handle(
    service: CriService, request: pb.ListContainersRequest
) -> pb.ListContainersResponse:
    """Every container matching the filter, oldest first."""
    flt = request.filter if request.HasField("filter") else None
    return pb.ListContainersResponse(containers=items(service, flt))
