"""CreateContainer requests → a checked `ContainerPlan`, or INVALID_ARGUMENT naming the field.

Pure: the checks that need no store or kernel. The sandbox and image lookups (NOT_FOUND,
FAILED_PRECONDITION) and everything spec generation refuses come after, in the manager.
"""

from __future__ import annotations

import dataclasses

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb


@dataclasses.dataclass(frozen=True)
class ContainerPlan:
    """A CreateContainer request that passed the field checks."""

    sandbox_ref: str  # pod_sandbox_id as given (a full id or a unique prefix)
    name: str
    attempt: int
    image: str  # ImageSpec.image as given (id, tag or digest reference)
    config: pb.ContainerConfig


def container_name(
    metadata: pb.ContainerMetadata, pod_name: str, pod_namespace: str, pod_uid: str
) -> str:
    """The name reserved for a container (CRI-O's and containerd's form)."""
    return "_".join(["k8s", metadata.name, pod_name, pod_namespace, pod_uid, str(metadata.attempt)])


def plan(request: pb.CreateContainerRequest) -> ContainerPlan:
    """Check the request's own fields; raise INVALID_ARGUMENT naming the first bad one."""
    if not request.pod_sandbox_id:
        raise InvalidArgumentError("pod_sandbox_id is required")
    if not request.HasField("config"):
        raise InvalidArgumentError("config is required")
    config = request.config
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgumentError("config.metadata.name is required")
    name = config.metadata.name
    if "/" in name or "\0" in name:
        raise InvalidArgumentError(f"config.metadata.name: {name!r} has '/' or NUL")
    if not config.HasField("image") or not config.image.image:
        raise InvalidArgumentError("config.image.image is required")
    if config.linux.security_context.namespace_options.pid == pb.NamespaceMode.TARGET and not (
        config.linux.security_context.namespace_options.target_id
    ):
        raise InvalidArgumentError(
            "config.linux.security_context.namespace_options.target_id is required with pid"
            " mode TARGET"
        )
    for i, mount in enumerate(config.mounts):
        if mount.HasField("image") and mount.image.image and not mount.readonly:
            # Image volumes are read-only by definition (KEP 4639); kubelet always sends
            # readonly, and a request saying otherwise is refused rather than silently
            # changed (critest "should reject Image Volume with Readonly set to false").
            raise InvalidArgumentError(
                f"config.mounts[{i}] ({mount.container_path!r}): image volume"
                f" {mount.image.image!r} is read-only; readonly must be true"
            )
    return ContainerPlan(
        sandbox_ref=request.pod_sandbox_id,
        name=name,
        attempt=config.metadata.attempt,
        image=config.image.image,
        config=config,
    )
