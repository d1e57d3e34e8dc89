"""Status: runtime and network readiness, runtime handlers and features, verbose config."""

from __future__ import annotations

import json

from cri import health
from cri.api import api_pb2 as pb
from cri.service import CriService

RPC = "Status"


def runtime_handlers(service: CriService) -> list[pb.RuntimeHandler]:
    """Every configured handler, plus the default one again under the empty name
    (kubelet looks the default handler up as "")."""
    features = handler_features(service)
    names = ["", *sorted(service.config.runtimes)]
    return [pb.RuntimeHandler(name=name, features=features) for name in names]


def handler_features(service: CriService) -> pb.RuntimeHandlerFeatures:
    """What each handler supports. Nothing is claimed before it is built and tested:
    recursive read-only mounts and user namespaces arrive with the containers issue."""
    return pb.RuntimeHandlerFeatures(recursive_read_only_mounts=False, user_namespaces=False)


def runtime_features(service: CriService) -> pb.RuntimeFeatures:
    """Runtime-wide features (supplemental groups policy lands with containers)."""
    return pb.RuntimeFeatures(supplemental_groups_policy=False, user_namespaces_host_network=False)


async def handle(service: CriService, request: pb.StatusRequest) -> pb.StatusResponse:
    """Report the RuntimeReady and NetworkReady conditions and what crib supports."""
    conditions = [
        health.runtime_condition(service.config),
        await health.network_condition(service.cni),
    ]
    response = pb.StatusResponse(
        status=pb.RuntimeStatus(
            conditions=[
                pb.RuntimeCondition(
                    type=c.type, status=c.status, reason=c.reason, message=c.message
                )
                for c in conditions
            ]
        ),
        runtime_handlers=runtime_handlers(service),
        features=runtime_features(service),
    )
    if request.verbose:
        # crictl info prints each value parsed as JSON.
        response.info["config"] = json.dumps(service.config.to_dict())
        response.info["podCIDR"] = json.dumps(service.runtime_state.pod_cidr)
    return response
