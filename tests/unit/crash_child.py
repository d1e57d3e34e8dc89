"""Run one store operation and die (os._exit) at the Nth filesystem call.

    python -m tests.unit.crash_child DIR OPERATION CRASH_AT

Exit status 0: the operation finished before call CRASH_AT; 99: it was killed there.
A crash here is a real one: no `finally`, no cleanup, like SIGKILL or a power cut.
"""

from __future__ import annotations

import os
import sys

from cri.store import RecordStore
from tests.fakes.records import ThingMetadata, ThingStatus

CRASHED = 99
PATCHED = ("open", "write", "fsync", "close", "rename", "replace", "mkdir", "unlink", "rmdir")


def main() -> int:
    dir_path, operation, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = RecordStore(dir_path, "thing", 1, ThingMetadata, ThingStatus)
    store.load()
    calls = 0

    def wrap(real):  # type: ignore[no-untyped-def]
        def patched(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == crash_at:
                os._exit(CRASHED)
            return real(*args, **kwargs)

        return patched

    for name in PATCHED:
        setattr(os, name, wrap(getattr(os, name)))
    if operation == "create":
        store.create("t2", ThingMetadata("two"), ThingStatus("created"))
    elif operation == "update":
        store.update_status("t1", lambda s: ThingStatus("running", s.generation + 1))
    elif operation == "delete":
        store.delete("t1")
    else:
        raise SystemExit(f"unknown operation {operation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
