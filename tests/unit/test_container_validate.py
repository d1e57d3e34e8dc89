"""CreateContainer field checks (before any lookup) and the container name form."""

from __future__ import annotations

import pytest

from common.errors import InvalidArgumentError
from cri.api import api_pb2 as pb
from cri.containers import validate


def request(**config: object) -> pb.CreateContainerRequest:
    fields: dict[str, object] = {
        "metadata": pb.ContainerMetadata(name="app", attempt=2),
        "image": pb.ImageSpec(image="busybox"),
    }
    fields.update(config)
    return pb.CreateContainerRequest(
        pod_sandbox_id="abc",
        config=pb.ContainerConfig(**fields),  # type: ignore[arg-type]
    )


def test_plan() -> None:
    plan = validate.plan(request())
    assert (plan.sandbox_ref, plan.name, plan.attempt, plan.image) == ("abc", "app", 2, "busybox")


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (pb.CreateContainerRequest(config=pb.ContainerConfig()), "pod_sandbox_id is required"),
        (pb.CreateContainerRequest(pod_sandbox_id="abc"), "config is required"),
        (request(metadata=pb.ContainerMetadata()), "config.metadata.name is required"),
        (request(metadata=pb.ContainerMetadata(name="a/b")), "'a/b'"),
        (request(image=pb.ImageSpec()), "config.image.image is required"),
        (
            request(
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(pid=pb.NamespaceMode.TARGET)
                    )
                )
            ),
            "target_id is required",
        ),
        (
            request(mounts=[pb.Mount(container_path="/v", image=pb.ImageSpec(image="vol:1"))]),
            "image volume 'vol:1' is read-only; readonly must be true",
        ),
    ],
)
def test_refusals_name_the_field(req: pb.CreateContainerRequest, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        validate.plan(req)


def test_container_name() -> None:
    metadata = pb.ContainerMetadata(name="app", attempt=3)
    assert validate.container_name(metadata, "web", "default", "u-1") == "k8s_app_web_default_u-1_3"
