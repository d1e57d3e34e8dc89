"""OCI annotations: the CRI metadata that runtimes, hooks and tools read from config.json.

crib writes containerd's names, the de-facto vocabulary of OCI runtimes and hooks
(Kata, gVisor, NRI plugins, `crictl inspect` users):

    io.kubernetes.cri.container-type      "container"
    io.kubernetes.cri.sandbox-id          the pod's sandbox id
    io.kubernetes.cri.sandbox-name        PodSandboxMetadata.name
    io.kubernetes.cri.sandbox-namespace   PodSandboxMetadata.namespace
    io.kubernetes.cri.sandbox-uid         PodSandboxMetadata.uid
    io.kubernetes.cri.container-name      ContainerMetadata.name
    io.kubernetes.cri.image-name          ImageSpec.user_specified_image, else the image's name

kubelet's own labels and annotations are not copied: they belong to the CRI record (and
come back in ContainerStatus), and annotations in config.json can change runtime
behaviour (crun reads run.oci.* keys), so a pod must not be able to set them.
"""

from __future__ import annotations

from cri.specgen.inputs import Spec, SpecInputs

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CONTAINER_TYPE_CONTAINER = "container"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"


def with_annotations(spec: Spec, inputs: SpecInputs) -> Spec:
    """annotations: the CRI metadata above."""
    pod = inputs.sandbox_config.metadata
    image_name = inputs.config.image.user_specified_image or inputs.image_name
    spec["annotations"] = {
        CONTAINER_TYPE: CONTAINER_TYPE_CONTAINER,
        SANDBOX_ID: inputs.sandbox_id,
        SANDBOX_NAME: pod.name,
        SANDBOX_NAMESPACE: pod.namespace,
        SANDBOX_UID: pod.uid,
        CONTAINER_NAME: inputs.config.metadata.name,
        IMAGE_NAME: image_name,
    }
    return spec
