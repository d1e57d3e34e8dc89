"""LinuxContainerResources for UpdateContainerResources and ContainerStatus.resources.

The OCI form comes from the same `with_resources` step that built the container's spec, so
an update means exactly what the same values meant at create (zero = unchanged, swap = the
memory limit when the host can limit swap, hugepages only with the hugetlb controller).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from cri.api import api_pb2 as pb
from cri.specgen import HostFacts, PodFiles, SpecInputs
from cri.specgen.resources import with_resources


def to_json(resources: pb.LinuxContainerResources) -> dict[str, Any]:
    """Protobuf JSON of a resources message (how records keep it)."""
    return json_format.MessageToDict(resources, preserving_proto_field_name=True)


def from_json(data: dict[str, Any]) -> pb.LinuxContainerResources:
    """The message a record keeps as JSON."""
    return json_format.ParseDict(data, pb.LinuxContainerResources(), ignore_unknown_fields=True)


def oci_resources(
    resources: pb.LinuxContainerResources, host: HostFacts, container_id: str
) -> dict[str, Any]:
    """OCI LinuxResources (the JSON `runtime update --resources -` reads) for an update.

    Raises `cri.specgen.SpecInvalidError` for values the spec step refuses.
    """
    inputs = SpecInputs(
        container_id=container_id,
        sandbox_id="",
        config=pb.ContainerConfig(linux=pb.LinuxContainerConfig(resources=resources)),
        sandbox_config=pb.PodSandboxConfig(),
        image_config={},
        image_name="",
        rootfs_path="",
        namespace_paths={},
        pod_files=PodFiles(),
        cgroup_parent="",
        host=host,
    )
    spec = with_resources({"process": {}, "linux": {}}, inputs)
    result: dict[str, Any] = spec["linux"].get("resources", {})
    return result


def merged(old: dict[str, Any], update: pb.LinuxContainerResources) -> dict[str, Any]:
    """The resources after an update: fields the update sets replace the old ones (zero
    values mean "not specified", as in the spec; kubelet always sends the full set)."""
    result = dict(old)
    result.update(to_json(update))
    return result
