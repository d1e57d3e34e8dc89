"""UpdatePodSandboxResources: acknowledge a pod's new resources (in-place pod resize).

kubelet owns the pod cgroup (PodSandboxConfig.linux.cgroup_parent): it resizes it itself,
then tells the runtime. crib has no pod-level cgroup of its own to change (the pause's leaf
holds only the pause; pods without a parent share crib's default parent), so like
containerd and CRI-O (which only hand the values to NRI plugins) it checks the request and
records nothing in the kernel. The containers' own limits change via
UpdateContainerResources.
"""

from __future__ import annotations

import logging

from cri.api import api_pb2 as pb
from cri.containers import resources as res
from cri.service import CriService

RPC = "UpdatePodSandboxResources"

log = logging.getLogger("crib.pods")


async def handle(
    service: CriService, request: pb.UpdatePodSandboxResourcesRequest
) -> pb.UpdatePodSandboxResourcesResponse:
    """NOT_FOUND for an unknown sandbox, INVALID_ARGUMENT for values a container spec would
    refuse too; otherwise success."""
    record = service.pods.require(request.pod_sandbox_id)
    host = service.host_facts(record.metadata.runtime_handler)
    for field in ("overhead", "resources"):
        if request.HasField(field):
            res.oci_resources(getattr(request, field), host, record.record_id)
    log.info(
        "sandbox %s: pod resources now %s (overhead %s); kubelet sizes the pod cgroup",
        record.record_id,
        res.to_json(request.resources) or "{}",
        res.to_json(request.overhead) or "{}",
    )
    return pb.UpdatePodSandboxResourcesResponse()
