"""Names inside ROOT/<container_id>/ (imported by the lean `start` path: stdlib-free)."""

from __future__ import annotations

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# "PID START_TIME" of the init, for `start` (which must not pay for a JSON parser).
INIT_FILE = "init"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-")


def check_id_fast(container_id: str) -> bool:
    """runc's container id charset: [A-Za-z0-9_+.-], not starting with a separator."""
    return (
        0 < len(container_id) <= 1024
        and container_id[0].isalnum()
        and container_id.isascii()
        and all(c in _ID_CHARS for c in container_id)
    )
