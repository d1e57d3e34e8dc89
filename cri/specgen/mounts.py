"""mounts: the default filesystems, the pod's files, kubelet's mounts and image volumes.

Order in the spec (runtimes mount in array order):

    1. defaults      /proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup
                     minus every default a supplied mount replaces (same destination, and
                     everything under /dev or /sys when /dev or /sys itself is supplied)
    2. supplied      kubelet's Mounts, Mount.image volumes, then the pod's /etc/hostname,
                     /etc/hosts, /etc/resolv.conf and /dev/shm (each skipped when kubelet
                     mounts that path itself), stably sorted by path depth so that a
                     parent is mounted before its children (Docker's and containerd's order)

CRI propagation → OCI option, and the root propagation it needs (CRI-O, containerd):

    PROPAGATION_PRIVATE           rprivate
    PROPAGATION_HOST_TO_CONTAINER rslave    linux.rootfsPropagation "rslave" (unless rshared)
    PROPAGATION_BIDIRECTIONAL     rshared   linux.rootfsPropagation "rshared"

Read-only: readonly → "ro"; readonly + recursive_read_only → "rro" (mount_setattr(2)
MOUNT_ATTR_RDONLY with AT_RECURSIVE, Linux >= 5.12); recursive_read_only needs readonly and
PROPAGATION_PRIVATE (api.proto, Mount.recursive_read_only).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from cri.api import api_pb2 as pb
from cri.specgen.errors import (
    SpecInputError,
    SpecInvalidError,
    SpecPreconditionError,
    SpecUnsupportedError,
)
from cri.specgen.inputs import RootfsDir, Spec, SpecInputs

CGROUP_MOUNT_POINT = "/sys/fs/cgroup"
ETC_HOSTNAME = "/etc/hostname"
ETC_HOSTS = "/etc/hosts"
ETC_RESOLV_CONF = "/etc/resolv.conf"
DEV_SHM = "/dev/shm"

_PROPAGATION_OPTION = {
    pb.PROPAGATION_PRIVATE: "rprivate",
    pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    pb.PROPAGATION_BIDIRECTIONAL: "rshared",
}


def clean_container_path(path: str, field: str) -> str:
    """An absolute, normalised container path; relative paths and ".." are refused."""
    if not path:
        raise SpecInvalidError(f"{field} is empty")
    if not path.startswith("/"):
        raise SpecInvalidError(f"{field} {path!r} is not an absolute path")
    if ".." in path.split("/"):
        raise SpecInvalidError(f"{field} {path!r} contains '..'")
    if "\0" in path:
        raise SpecInvalidError(f"{field} {path!r} contains a NUL byte")
    return posixpath.normpath(path).replace("//", "/")


def path_depth(path: str) -> int:
    """Number of components of an absolute path ("/" is 0): the mount sort key."""
    return len([part for part in path.split("/") if part])


def default_mounts(inputs: SpecInputs) -> list[dict[str, object]]:
    """The filesystems every container gets (containerd's defaults without /run).

    sysfs and cgroup are read-only unless the container is privileged (CRI: "Any sysfs
    and procfs mounts are mounted RW" for privileged containers).
    """
    mode = "rw" if inputs.privileged else "ro"
    cgroup_options = ["nosuid", "noexec", "nodev", "relatime", mode]
    if not (inputs.host.cgroup_v2 and not inputs.privileged):
        # Without a cgroup namespace the container mounts the host's cgroup2 superblock:
        # options missing from this mount would be dropped for the whole host.
        cgroup_options += [o for o in inputs.host.cgroup_mount_options if o not in cgroup_options]
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": DEV_SHM,
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", mode],
        },
        {
            "destination": CGROUP_MOUNT_POINT,
            "type": "cgroup",
            "source": "cgroup",
            "options": cgroup_options,
        },
    ]


def with_default_mounts(spec: Spec, inputs: SpecInputs) -> Spec:
    """mounts = the default filesystems (with_mounts drops those a supplied mount replaces)."""
    spec["mounts"] = default_mounts(inputs)
    return spec


def _check_propagation(inputs: SpecInputs, source: str, propagation: int) -> None:
    """A slave/shared bind needs its host mount to propagate at all (CRI-O, containerd)."""
    lookup = inputs.host.mount_propagation
    if lookup is None or propagation == pb.PROPAGATION_PRIVATE:
        return
    current = lookup(source)
    if propagation == pb.PROPAGATION_BIDIRECTIONAL and current != "shared":
        raise SpecPreconditionError(
            f"host path {source!r} is on a {current} mount; "
            "PROPAGATION_BIDIRECTIONAL needs a shared mount"
        )
    if propagation == pb.PROPAGATION_HOST_TO_CONTAINER and current not in ("shared", "slave"):
        raise SpecPreconditionError(
            f"host path {source!r} is on a {current} mount; "
            "PROPAGATION_HOST_TO_CONTAINER needs a shared or slave mount"
        )


def _id_mappings(mappings: Iterable[pb.IDMapping]) -> list[dict[str, int]]:
    return [
        {"containerID": m.container_id, "hostID": m.host_id, "size": m.length} for m in mappings
    ]


def cri_mount_to_oci(mount: pb.Mount, inputs: SpecInputs) -> dict[str, object]:
    """One kubelet Mount as an OCI bind mount (see the module docstring for the options)."""
    destination = clean_container_path(mount.container_path, "mount container_path")
    readonly = mount.readonly
    if mount.HasField("image") and mount.image.image:
        if mount.host_path:
            raise SpecInvalidError(
                f"mount {destination!r} sets both host_path {mount.host_path!r} and image "
                f"{mount.image.image!r}; they are mutually exclusive"
            )
        source = inputs.image_volumes.get(destination)
        if not source:
            raise SpecInputError(
                f"image volume {mount.image.image!r} for {destination!r} was not resolved "
                "to a host path"
            )
        # Image volumes are read-only by definition (KEP 4639).
        readonly = True
        uid_mappings: list[dict[str, int]] = []
        gid_mappings: list[dict[str, int]] = []
    else:
        source = mount.host_path
        if not source:
            raise SpecInvalidError(f"mount {destination!r} has an empty host_path")
        if not source.startswith("/"):
            raise SpecInvalidError(f"mount host_path {source!r} is not an absolute path")
        uid_mappings = _id_mappings(mount.uidMappings)
        gid_mappings = _id_mappings(mount.gidMappings)

    propagation = mount.propagation
    if propagation not in _PROPAGATION_OPTION:
        raise SpecInvalidError(f"mount {destination!r} has unknown propagation {propagation}")
    _check_propagation(inputs, source, propagation)
    options = ["rbind", _PROPAGATION_OPTION[propagation]]

    if mount.recursive_read_only:
        if not readonly:
            raise SpecInvalidError(
                f"mount {destination!r}: recursive_read_only needs readonly to be set too"
            )
        if propagation != pb.PROPAGATION_PRIVATE:
            raise SpecInvalidError(
                f"mount {destination!r}: recursive_read_only needs PROPAGATION_PRIVATE, got "
                f"{pb.MountPropagation.Name(propagation)}"
            )
        if not inputs.host.recursive_read_only:
            raise SpecUnsupportedError(
                f"mount {destination!r}: recursive read-only mounts are not supported here "
                "(they need Linux >= 5.12 and a runtime handler that applies them)"
            )
        options.append("rro")
    else:
        options.append("ro" if readonly else "rw")

    oci: dict[str, object] = {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": options,
    }
    if uid_mappings:
        oci["uidMappings"] = uid_mappings
    if gid_mappings:
        oci["gidMappings"] = gid_mappings
    return oci


def pod_file_mounts(inputs: SpecInputs, taken: set[str]) -> list[dict[str, object]]:
    """The pod's hostname/hosts/resolv.conf (ro with a read-only rootfs) and /dev/shm binds."""
    mode = "ro" if inputs.security_context.readonly_rootfs else "rw"
    files = inputs.pod_files
    wanted = [
        (ETC_HOSTNAME, files.hostname_path, mode),
        (ETC_HOSTS, files.hosts_path, mode),
        (ETC_RESOLV_CONF, files.resolv_conf_path, mode),
        (DEV_SHM, files.shm_path, "rw"),
    ]
    return [
        {
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": ["rbind", "rprivate", option],
        }
        for destination, source, option in wanted
        if source and destination not in taken
    ]


def _replaced_by(default_destination: str, supplied: set[str]) -> bool:
    if default_destination in supplied:
        return True
    return any(
        default_destination.startswith(parent + "/")
        for parent in ("/dev", "/sys")
        if parent in supplied
    )


def with_mounts(spec: Spec, inputs: SpecInputs) -> Spec:
    """Add the supplied mounts after the defaults they do not replace (module docstring)."""
    supplied: list[dict[str, object]] = []
    for mount in inputs.config.mounts:
        supplied.append(cri_mount_to_oci(mount, inputs))
    destinations = [str(m["destination"]) for m in supplied]
    seen: set[str] = set()
    for destination in destinations:
        if destination == "/":
            raise SpecInvalidError("a mount may not replace the container root '/'")
        if destination in seen:
            raise SpecInvalidError(f"two mounts have the container path {destination!r}")
        seen.add(destination)
    supplied.extend(pod_file_mounts(inputs, seen))
    # Stable: equal depths keep kubelet's order, then the pod's files.
    supplied.sort(key=lambda m: path_depth(str(m["destination"])))

    supplied_set = {str(m["destination"]) for m in supplied}
    defaults = [
        m for m in spec.get("mounts", []) if not _replaced_by(str(m["destination"]), supplied_set)
    ]
    spec["mounts"] = defaults + supplied

    propagations = {mount.propagation for mount in inputs.config.mounts}
    if pb.PROPAGATION_BIDIRECTIONAL in propagations:
        spec["linux"]["rootfsPropagation"] = "rshared"
    elif pb.PROPAGATION_HOST_TO_CONTAINER in propagations:
        spec["linux"]["rootfsPropagation"] = "rslave"
    return spec


def image_volume_dirs(inputs: SpecInputs, uid: int, gid: int) -> list[RootfsDir]:
    """The image config's Volumes not covered by a kubelet mount, as directories to create.

    crib treats them as CRI-O's default `image_volumes = "mkdir"`: the directory is created
    in the container's writable layer (keeping what the image has there), owned by the
    container's user; nothing is mounted.
    """
    volumes = inputs.image_config.get("Volumes") if hasattr(inputs.image_config, "get") else None
    if not volumes:
        return []
    if not isinstance(volumes, dict):
        raise SpecInvalidError(f"image config Volumes must be an object, got {volumes!r}")
    covered = {posixpath.normpath(m.container_path) for m in inputs.config.mounts}
    dirs = []
    for volume in sorted(volumes):
        path = posixpath.normpath(posixpath.join("/", volume))
        if ".." in volume.split("/") or path in covered:
            continue
        dirs.append(RootfsDir(path=path, uid=uid, gid=gid))
    return dirs
