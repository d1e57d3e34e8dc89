"""`generate`: compose the `with_*` steps into one container's OCI spec.

Each step is `(spec, inputs) -> spec`: it reads `SpecInputs`, changes its part of the spec
and returns it. The order matters where one step reads what another wrote:

    base_spec                 ociVersion, root, empty process/linux
    with_process_args         process.args (command/args over Entrypoint/Cmd)
    with_working_dir          process.cwd
    with_terminal             process.terminal
    with_env                  process.env
    with_user                 process.user
    with_namespaces           linux.namespaces (+ id mappings)
    with_default_mounts       mounts = proc, dev, devpts, shm, mqueue, sysfs, cgroup
    with_mounts               + pod files, kubelet mounts, image volumes   (after defaults)
    with_devices              linux.devices, linux.resources.devices
    with_privileged           refuses privileged in a non-privileged sandbox
    with_capabilities         process.capabilities
    with_no_new_privs         process.noNewPrivileges
    with_readonly_rootfs      root.readonly
    with_masked_paths         linux.maskedPaths, linux.readonlyPaths
    with_apparmor             process.apparmorProfile
    with_seccomp              linux.seccomp                              (after capabilities)
    with_resources            linux.resources, process.oomScoreAdj
    with_cgroups_path         linux.cgroupsPath
    with_annotations          annotations

Nothing here touches the host: facts come from `inputs.host` (see `cri.specgen.host`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cri.specgen.annotations import with_annotations
from cri.specgen.devices import with_devices
from cri.specgen.inputs import GeneratedSpec, RootfsDir, Spec, SpecInputs
from cri.specgen.mounts import image_volume_dirs, with_default_mounts, with_mounts
from cri.specgen.namespaces import with_namespaces
from cri.specgen.process import (
    base_spec,
    log_path_of,
    stop_signal_of,
    with_env,
    with_process_args,
    with_terminal,
    with_working_dir,
)
from cri.specgen.resources import with_cgroups_path, with_resources
from cri.specgen.seccomp import seccomp_profile_name, with_seccomp
from cri.specgen.security import (
    with_apparmor,
    with_capabilities,
    with_masked_paths,
    with_no_new_privs,
    with_privileged,
    with_readonly_rootfs,
)
from cri.specgen.user import container_user_of, with_user

SpecStep = Callable[[Spec, SpecInputs], Spec]

STEPS: Sequence[SpecStep] = (
    with_process_args,
    with_working_dir,
    with_terminal,
    with_env,
    with_user,
    with_namespaces,
    with_default_mounts,
    with_mounts,
    with_devices,
    with_privileged,
    with_capabilities,
    with_no_new_privs,
    with_readonly_rootfs,
    with_masked_paths,
    with_apparmor,
    with_seccomp,
    with_resources,
    with_cgroups_path,
    with_annotations,
)


def build_spec(inputs: SpecInputs, steps: Sequence[SpecStep] = STEPS) -> Spec:
    """The OCI spec (config.json content) for `inputs`, built by `steps` in order."""
    spec = base_spec(inputs)
    for step in steps:
        spec = step(spec, inputs)
    return spec


def generate(inputs: SpecInputs) -> GeneratedSpec:
    """The OCI spec for a container plus what CreateContainer needs around it.

    Raises `cri.specgen.errors.SpecError` subclasses: INVALID_ARGUMENT for requests that
    cannot be honoured as given, UNIMPLEMENTED for features this host lacks,
    FAILED_PRECONDITION for host mounts without the needed propagation, INTERNAL when the
    caller left out a namespace pin or an image volume path.
    """
    spec = build_spec(inputs)
    user = container_user_of(spec)
    working_dir = spec["process"]["cwd"]
    dirs: list[RootfsDir] = []
    if working_dir != "/":
        dirs.append(RootfsDir(path=working_dir))
    dirs.extend(image_volume_dirs(inputs, user.uid, user.gid))
    return GeneratedSpec(
        spec=spec,
        log_path=log_path_of(inputs),
        user=user,
        working_dir=working_dir,
        dirs_to_create=tuple(dirs),
        stop_signal=stop_signal_of(inputs),
        seccomp_profile=seccomp_profile_name(inputs),
    )
