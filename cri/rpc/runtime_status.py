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
    names = sorted(service.config.runtimes)
    handlers = [
        pb.RuntimeHandler(
            name="", features=handler_features(service, service.config.default_runtime)
        )
    ]
    handlers.extend(pb.RuntimeHandler(name=n, features=handler_features(service, n)) for n in names)
    return handlers


def handler_features(service: CriService, handler: str) -> pb.RuntimeHandlerFeatures:
    """What one handler supports. Recursive read-only mounts: when its `features` lists the
    "rro" mount option and the kernel has mount_setattr(2) (the same fact spec generation
    uses). User namespaces: not supported by crib yet."""
    rro = service.host_facts(handler).recursive_read_only
    return pb.RuntimeHandlerFeatures(recursive_read_only_mounts=rro, user_namespaces=False)


def runtime_features(service: CriService) -> pb.RuntimeFeatures:
    """Runtime-wide features: SupplementalGroupsPolicy (Merge and Strict) is honoured by
    spec generation for every handler."""
    return pb.RuntimeFeatures(supplemental_groups_policy=True, user_namespaces_host_network=False)


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
