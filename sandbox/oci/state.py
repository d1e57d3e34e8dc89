"""The OCI runtime state (runtime-spec runtime.md "State"), as `state ID` prints it.

    creating ──▶ created ──(start)──▶ running ──(process exits)──▶ stopped ──(delete)──▶ gone
                   │                                                 ▲
                   └───────────────(kill / init dies)────────────────┘

`created`: the init exists and waits for `start`; `running`: it exec'd the user process;
`stopped`: it exited (or was never started and died). runc adds `paused` (freezer), which
crib does not implement.
"""

from __future__ import annotations

# Not `typing.TYPE_CHECKING`: crib-runtime imports this module, and typing costs ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
STOPPED = "stopped"

STATUSES = (CREATING, CREATED, RUNNING, STOPPED)


if TYPE_CHECKING:
    # For mypy only: crib-runtime builds no class it does not need (start-up budget).
    class OCIState(TypedDict):
        """runc's `state` output: the OCI fields plus runc's extras (rootfs, created, owner)."""

        ociVersion: str
        id: str
        pid: int
        status: str
        bundle: str
        rootfs: str
        created: str
        owner: str
        annotations: dict[str, str]


def oci_state(
    container_id: str,
    status: str,
    pid: int,
    bundle: str,
    rootfs: str,
    created: str,
    annotations: dict[str, str],
) -> OCIState:
    """The state document; `pid` is 0 once stopped (runc prints 0 then)."""
    state: OCIState = {
        "ociVersion": "1.0.2",
        "id": container_id,
        "pid": pid if status in (CREATED, RUNNING) else 0,
        "status": status,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": created,
        "owner": "",
        "annotations": annotations,
    }
    return state
