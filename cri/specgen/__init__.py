"""CRI container config → OCI runtime spec, as small pure functions.

Use from CreateContainer:

    host = cri.specgen.host.probe(runtime_supports_rro=...)        # once, at start-up
    user_db = read_user_database(rootfs_path)                      # rooted, size-limited
    volumes = {m.container_path: resolve_image_sub_path(root, m.image_sub_path, ref) ...}
    generated = generate(SpecInputs(container_id=..., ..., user_db=user_db,
                                    image_volumes=volumes, host=host))
    write generated.spec as <bundle>/config.json; create generated.dirs_to_create rooted;
    keep generated.log_path, .user, .stop_signal, .seccomp_profile in the record

`generate` does no I/O: everything comes from `SpecInputs` (see `cri.specgen.generate` for
the order of the `with_*` steps and `docs/cri-edge-cases.md` for how ambiguous fields are read).
"""

from __future__ import annotations

from cri.specgen.errors import (
    ImageUserFileError,
    SeccompProfileError,
    SpecError,
    SpecInputError,
    SpecInvalidError,
    SpecPreconditionError,
    SpecUnsupportedError,
    UserNotFoundError,
)
from cri.specgen.generate import STEPS, build_spec, generate
from cri.specgen.inputs import (
    NAMESPACE_KINDS,
    ContainerUser,
    GeneratedSpec,
    GroupEntry,
    HostDevice,
    HostFacts,
    PasswdEntry,
    PodFiles,
    RootfsDir,
    Spec,
    SpecInputs,
    UserDatabase,
)
from cri.specgen.resources import container_cgroups_path
from cri.specgen.rootfs import read_user_database, resolve_image_sub_path, resolve_in_root
from cri.specgen.user import image_status_user

__all__ = [
    # entry points
    "generate",
    "build_spec",
    "STEPS",
    # inputs and outputs
    "SpecInputs",
    "HostFacts",
    "HostDevice",
    "PodFiles",
    "UserDatabase",
    "PasswdEntry",
    "GroupEntry",
    "GeneratedSpec",
    "ContainerUser",
    "RootfsDir",
    "Spec",
    "NAMESPACE_KINDS",
    # helpers for the caller
    "read_user_database",
    "resolve_image_sub_path",
    "resolve_in_root",
    "container_cgroups_path",
    "image_status_user",
    # errors
    "SpecError",
    "SpecInvalidError",
    "UserNotFoundError",
    "ImageUserFileError",
    "SeccompProfileError",
    "SpecUnsupportedError",
    "SpecPreconditionError",
    "SpecInputError",
]
