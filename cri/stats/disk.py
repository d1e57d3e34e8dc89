"""The size of containers' writable layers (overlay upper dirs), walked in the background.

Measuring a directory means walking it, which costs as much as the container wrote
files: never done on the caller's path. Stats calls read the last measurement and ask
for a fresh one when it is older than `refresh_s`; one worker thread walks, one
directory at a time, so a node full of containers costs one core-second now and then,
not one per call:

    stats call ──get()──► last (bytes, inodes, when) or None
         └────request()──► queue ─► worker thread: walk upper dir ─► cache

A container is measured as soon as it is created (`request`), so its first stats call
already has a size. Hard links count once; sizes are allocated blocks (st_blocks * 512),
like du(1) and containerd's snapshot usage.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time

log = logging.getLogger("crib.stats")

REFRESH_S = 5.0
_STOP = ""


@dataclasses.dataclass(frozen=True)
class LayerUsage:
    """One measurement of a writable layer."""

    used_bytes: int
    inodes_used: int
    timestamp_ns: int


def directory_usage(path: str) -> tuple[int, int]:
    """(allocated bytes, inodes) of everything below and including `path`; entries that
    vanish during the walk are skipped. Does not cross into other filesystems."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0, 0
    seen: set[int] = {top.st_ino}
    used = top.st_blocks * 512
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != top.st_dev:
                    continue
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    used += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return used, len(seen)


class LayerUsageCache:
    """Writable-layer sizes by container id, measured by one background thread."""

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._usage: dict[str, LayerUsage] = {}
        self._paths: dict[str, str] = {}
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (idempotent; the first request starts it too)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crib-layer-usage", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the worker after the walk in progress."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=5)

    def get(self, container_id: str) -> LayerUsage | None:
        """The last measurement of `container_id`'s layer, if any."""
        with self._lock:
            return self._usage.get(container_id)

    def request(self, container_id: str, upper_dir: str, *, force: bool = False) -> None:
        """Have the layer measured unless a recent measurement exists (or one is queued)."""
        with self._lock:
            self._paths[container_id] = upper_dir
            if container_id in self._queued:
                return
            last = self._usage.get(container_id)
            if (
                not force
                and last is not None
                and time.time_ns() - last.timestamp_ns < self.refresh_s * 1e9
            ):
                return
            self._queued.add(container_id)
        self.start()
        self._queue.put(container_id)

    def forget(self, container_id: str) -> None:
        """Drop a removed container's measurement."""
        with self._lock:
            self._usage.pop(container_id, None)
            self._paths.pop(container_id, None)

    def measure(self, container_id: str) -> LayerUsage | None:
        """Walk `container_id`'s layer now (the worker's step; tests call it directly)."""
        with self._lock:
            self._queued.discard(container_id)
            path = self._paths.get(container_id)
        if path is None or not os.path.isdir(path):
            return None
        used, inodes = directory_usage(path)
        usage = LayerUsage(used, inodes, time.time_ns())
        with self._lock:
            if container_id in self._paths:  # not forgotten meanwhile
                self._usage[container_id] = usage
        return usage

    def _run(self) -> None:
        while True:
            container_id = self._queue.get()
            if container_id == _STOP:
                return
            try:
                self.measure(container_id)
            except Exception:  # the worker must outlive one bad walk
                log.exception("measuring the writable layer of %s failed", container_id)


def filesystem_facts(path: str) -> tuple[int, int, int] | None:
    """(capacity bytes, total inodes, free inodes) of the filesystem holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize, st.f_files, st.f_ffree
