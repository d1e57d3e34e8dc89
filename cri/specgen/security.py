"""Capabilities, privileged mode, no_new_privs, read-only root, masked paths and AppArmor.

Capabilities, applied in this order (containerd and CRI-O semantics):

    start   the default set (below), or every capability when privileged
    add     "ALL" in add_capabilities      -> every capability the host can grant
    drop    "ALL" in drop_capabilities     -> nothing
    add     each named capability          -> bounding, effective, permitted
    drop    each named capability          -> removed from every set
    ambient each add_ambient_capabilities  -> all five sets (the kernel only keeps an
                                              ambient capability that is also permitted
                                              and inheritable; capabilities(7))

Names are case-insensitive with or without the CAP_ prefix. Inheritable stays empty
except for ambient requests (CVE-2022-27652: inherited capabilities reached programs that
did not ask for them), and privileged gets bounding/effective/permitted only.
"""

from __future__ import annotations

from cri.api import api_pb2 as pb
from cri.specgen.errors import SpecInvalidError, SpecUnsupportedError
from cri.specgen.inputs import Spec, SpecInputs
from sandbox.linux.capabilities import CAPABILITY_NAMES

# capabilities(7), by number (index = capability number): one table for crib, owned by the
# runtime side that applies them.
CAPABILITIES = CAPABILITY_NAMES
_CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}

# The default set of containerd (and Docker); CRI-O's default drops MKNOD, NET_RAW,
# SYS_CHROOT, AUDIT_WRITE and SETFCAP. crib keeps containerd's so images that ping or
# chroot behave as they do under containerd.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# /proc and /sys paths hidden from non-privileged containers when kubelet asks for
# masking at all (containerd's defaults; the same list as kubelet's ProcMount Default).
DEFAULT_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

APPARMOR_RUNTIME_DEFAULT = "runtime/default"
APPARMOR_UNCONFINED = "unconfined"
LOCALHOST_PREFIX = "localhost/"


def capability_name(name: str, field: str) -> str:
    """The CAP_-prefixed upper-case name; unknown capabilities are refused (as CRI-O)."""
    upper = name.strip().upper()
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in _CAP_NUMBER:
        raise SpecInvalidError(f"unknown capability {name!r} in {field}")
    return upper


def _ordered(caps: set[str]) -> list[str]:
    return sorted(caps, key=lambda cap: _CAP_NUMBER[cap])


def with_capabilities(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.capabilities (see the module docstring for the order of operations)."""
    everything = set(inputs.host.capabilities)
    requested = inputs.security_context.capabilities
    add = [c for c in requested.add_capabilities]
    drop = [c for c in requested.drop_capabilities]
    ambient_requested = list(requested.add_ambient_capabilities)

    caps = set(everything) if inputs.privileged else set(DEFAULT_CAPABILITIES)
    if any(c.strip().upper() == "ALL" for c in add):
        caps |= everything
    if any(c.strip().upper() == "ALL" for c in drop):
        caps.clear()
    for name in add:
        if name.strip().upper() != "ALL":
            caps.add(capability_name(name, "add_capabilities"))
    dropped = {
        capability_name(name, "drop_capabilities")
        for name in drop
        if name.strip().upper() != "ALL" and _known(name)
    }
    caps -= dropped
    ambient = {capability_name(name, "add_ambient_capabilities") for name in ambient_requested}
    caps |= ambient

    ordered = _ordered(caps)
    spec["process"]["capabilities"] = {
        "bounding": ordered,
        "effective": list(ordered),
        "permitted": list(ordered),
        "inheritable": _ordered(ambient),
        "ambient": _ordered(ambient),
    }
    return spec


def _known(name: str) -> bool:
    """Dropping a capability the kernel table lacks is a no-op (CRI-O), not an error."""
    upper = name.strip().upper()
    return (upper if upper.startswith("CAP_") else "CAP_" + upper) in _CAP_NUMBER


def with_privileged(spec: Spec, inputs: SpecInputs) -> Spec:
    """Refuse a privileged container in a sandbox that did not declare privileged.

    CRI: LinuxSandboxSecurityContext.privileged "MUST be true" when a privileged container
    is to run in the sandbox; containerd refuses the container otherwise. The other effects
    of privileged mode live where their field is built (capabilities, devices, mounts,
    masked paths, seccomp, AppArmor).
    """
    if inputs.privileged and not inputs.sandbox_config.linux.security_context.privileged:
        raise SpecInvalidError(
            f"container {inputs.config.metadata.name!r} is privileged but sandbox "
            f"{inputs.sandbox_id} is not"
        )
    return spec


def with_no_new_privs(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.noNewPrivileges from no_new_privs (false by default, as containerd and CRI-O)."""
    spec["process"]["noNewPrivileges"] = bool(inputs.security_context.no_new_privs)
    return spec


def with_readonly_rootfs(spec: Spec, inputs: SpecInputs) -> Spec:
    """root.readonly from readonly_rootfs."""
    spec["root"]["readonly"] = bool(inputs.security_context.readonly_rootfs)
    return spec


def with_masked_paths(spec: Spec, inputs: SpecInputs) -> Spec:
    """linux.maskedPaths and linux.readonlyPaths.

    kubelet sends the paths: its ProcMount "Default" list, or none for "Unmasked" (proto3
    cannot tell an empty list from an unset one, so an empty list must mean unmasked).
    A non-empty masked list is completed with crib's defaults, as CRI-O does, so a path a
    newer default list hides stays hidden; read-only paths are used as given. Privileged
    containers get neither (CRI: "Sensitive paths ... are not masked").
    """
    sc = inputs.security_context
    if inputs.privileged:
        spec["linux"].pop("maskedPaths", None)
        spec["linux"].pop("readonlyPaths", None)
        return spec
    masked = [clean_proc_path(p, "masked_paths") for p in sc.masked_paths]
    if masked:
        masked += [p for p in DEFAULT_MASKED_PATHS if p not in masked]
    readonly = [clean_proc_path(p, "readonly_paths") for p in sc.readonly_paths]
    spec["linux"]["maskedPaths"] = _unique(masked)
    spec["linux"]["readonlyPaths"] = _unique(readonly)
    return spec


def clean_proc_path(path: str, field: str) -> str:
    """A masked/readonly path must be absolute and free of "..", like any container path."""
    if not path.startswith("/") or ".." in path.split("/"):
        raise SpecInvalidError(f"{field} entry {path!r} is not an absolute path without '..'")
    return path


def _unique(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def apparmor_request(inputs: SpecInputs) -> tuple[int, str] | None:
    """(profile type, localhost name) asked for, or None when nothing was asked.

    The `apparmor` message wins over the deprecated `apparmor_profile` string
    ("runtime/default", "unconfined", "localhost/<name>").
    """
    sc = inputs.security_context
    if sc.HasField("apparmor"):
        profile = sc.apparmor
        if profile.profile_type != pb.SecurityProfile.Localhost and profile.localhost_ref:
            raise SpecInvalidError(
                "apparmor localhost_ref is set but profile_type is not Localhost"
            )
        name = profile.localhost_ref
        if profile.profile_type == pb.SecurityProfile.Localhost:
            name = name.removeprefix(LOCALHOST_PREFIX)
            if not name:
                raise SpecInvalidError("apparmor profile_type Localhost needs a localhost_ref")
        return profile.profile_type, name
    legacy = sc.apparmor_profile
    if not legacy:
        return None
    if legacy == APPARMOR_RUNTIME_DEFAULT:
        return pb.SecurityProfile.RuntimeDefault, ""
    if legacy == APPARMOR_UNCONFINED:
        return pb.SecurityProfile.Unconfined, ""
    if legacy.startswith(LOCALHOST_PREFIX) and len(legacy) > len(LOCALHOST_PREFIX):
        return pb.SecurityProfile.Localhost, legacy.removeprefix(LOCALHOST_PREFIX)
    raise SpecInvalidError(
        f"apparmor_profile {legacy!r} is not runtime/default, unconfined or localhost/<name>"
    )


def with_apparmor(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.apparmorProfile.

    On a host without AppArmor (crib's hosts so far): nothing and Unconfined are fine,
    RuntimeDefault means "the best the host has" and is satisfied unconfined (CRI-O
    ignores AppArmor entirely when it is disabled), and a Localhost profile is refused:
    the user asked for a specific confinement that cannot be given, and running without
    it silently would weaken what they asked for (containerd refuses it too).
    Privileged containers are not confined (CRI: "AppArmor confinement is not applied").
    """
    request = apparmor_request(inputs)
    spec["process"].pop("apparmorProfile", None)
    if inputs.privileged:
        return spec
    # Unspecified means the runtime's default (kubernetes#51746).
    profile_type, name = request or (pb.SecurityProfile.RuntimeDefault, "")
    if profile_type == pb.SecurityProfile.Unconfined:
        return spec
    if not inputs.host.apparmor_enabled:
        if profile_type == pb.SecurityProfile.Localhost:
            raise SpecUnsupportedError(
                f"apparmor profile {LOCALHOST_PREFIX}{name} was requested but AppArmor is not "
                "enabled on this host"
            )
        return spec
    if profile_type == pb.SecurityProfile.Localhost:
        spec["process"]["apparmorProfile"] = name
    elif inputs.host.apparmor_default_profile:
        spec["process"]["apparmorProfile"] = inputs.host.apparmor_default_profile
    return spec
