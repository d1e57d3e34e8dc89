"""Capability names, the five sets as bit masks, and applying them (capabilities(7)).

Order matters and follows runc (libcontainer/init_linux.go finalizeNamespace):

    1. drop from the bounding set what `bounding` lacks   (needs CAP_SETPCAP, so first)
    2. PR_SET_KEEPCAPS, then setgroups/setresgid/setresuid (done by the caller)
    3. capset(effective, permitted, inheritable)
    4. raise each ambient capability                       (must be in permitted+inheritable)
"""

from __future__ import annotations

from sandbox.linux import syscalls

# Not `typing.TYPE_CHECKING`: typing costs ~10 ms at every crib-runtime start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

# <linux/capability.h>, in bit order.
CAPABILITY_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAPABILITY_NUMBERS = {name: number for number, name in enumerate(CAPABILITY_NAMES)}


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open(f"{proc}/sys/kernel/cap_last_cap") as cap_file:
            return int(cap_file.read())
    except (OSError, ValueError):
        return len(CAPABILITY_NAMES) - 1


if TYPE_CHECKING:

    class CapabilitySets(TypedDict):
        """The five sets as 64-bit masks."""

        bounding: int
        effective: int
        permitted: int
        inheritable: int
        ambient: int


def to_mask(names: list[str], highest: int, unknown: list[str]) -> int:
    """A bit mask of `names`; names this kernel (or crib) does not know land in `unknown`.

    runc 1.1 ignores unknown or unavailable capabilities with a warning rather than failing,
    so a spec written for a newer kernel still runs on an older one.
    """
    mask = 0
    for name in names:
        number = CAPABILITY_NUMBERS.get(name.upper())
        if number is None or number > highest:
            if name not in unknown:
                unknown.append(name)
            continue
        mask |= 1 << number
    return mask


def plan(capabilities: dict[str, list[str]], highest: int) -> tuple[CapabilitySets, list[str]]:
    """The masks for a spec's `process.capabilities`, and the names that were ignored."""
    unknown: list[str] = []
    sets: CapabilitySets = {
        "bounding": to_mask(capabilities.get("bounding", []), highest, unknown),
        "effective": to_mask(capabilities.get("effective", []), highest, unknown),
        "permitted": to_mask(capabilities.get("permitted", []), highest, unknown),
        "inheritable": to_mask(capabilities.get("inheritable", []), highest, unknown),
        "ambient": to_mask(capabilities.get("ambient", []), highest, unknown),
    }
    return sets, unknown


def names(mask: int) -> list[str]:
    """Capability names in a mask, in bit order."""
    return [name for number, name in enumerate(CAPABILITY_NAMES) if mask >> number & 1]


def drop_bounding(sets: CapabilitySets, highest: int) -> None:
    """Step 1: PR_CAPBSET_DROP every capability not in the bounding set."""
    for number in range(highest + 1):
        if not sets["bounding"] >> number & 1:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)
            except OSError as err:
                if err.errno != 22:  # EINVAL: the kernel does not know this one
                    raise


def apply(sets: CapabilitySets, highest: int) -> list[str]:
    """Steps 3 and 4: capset, then clear and raise the ambient set.

    An ambient capability missing from permitted or inheritable cannot be raised (EPERM,
    capabilities(7)); runc warns and goes on, and so do we: the warnings are returned.
    """
    syscalls.capset(sets["effective"], sets["permitted"], sets["inheritable"])
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    warnings = []
    for number in range(highest + 1):
        if sets["ambient"] >> number & 1:
            try:
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, number)
            except PermissionError:
                warnings.append(f"can't raise ambient capability {CAPABILITY_NAMES[number]}")
    return warnings
