"""Resource limits (setrlimit(2)), applied as runc does: to the container's init.

Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace; this host and
many hardened nodes lack it. Lowering is always allowed, so a limit that fails with EPERM
is retried with the hard limit clamped to the current one, and the soft limit to that.
(The effective limit is then the most the host permits, which is what the container would
observe under runc on the same host only for the soft limit; callers get the clamped pair.)
"""

from __future__ import annotations

import resource

RLIMIT_NUMBERS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

_INFINITY = 2**64 - 1


def _kernel_value(value: int) -> int:
    # The spec's uint64 max is RLIM_INFINITY; Python's resource module wants -1 for it.
    return resource.RLIM_INFINITY if value >= _INFINITY else value


def apply(rlimits: list[tuple[str, int, int]]) -> list[str]:
    """setrlimit each (type, soft, hard); returns notes about limits that had to be clamped."""
    notes = []
    for name, soft, hard in rlimits:
        number = RLIMIT_NUMBERS[name]
        want = (_kernel_value(soft), _kernel_value(hard))
        try:
            resource.setrlimit(number, want)
        except (PermissionError, ValueError):
            current_hard = resource.getrlimit(number)[1]
            clamped_soft = want[0]
            if current_hard != resource.RLIM_INFINITY and (
                clamped_soft == resource.RLIM_INFINITY or clamped_soft > current_hard
            ):
                clamped_soft = current_hard
            resource.setrlimit(number, (clamped_soft, current_hard))
            notes.append(f"{name}: hard limit {hard} not permitted, kept {current_hard}")
    return notes
