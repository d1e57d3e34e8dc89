"""Pull progress (log lines per layer: bytes and rate) and counters for the metrics endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

log = logging.getLogger("crib.image.pull")

MIB = 1024 * 1024
# How often an in-flight pull logs where each download stands.
REPORT_EVERY_S = 10.0


@dataclasses.dataclass
class PullMetrics:
    """Counters since start-up, in the shape of Prometheus counters and gauges."""

    pulls_succeeded_total: int = 0
    pulls_failed_total: int = 0
    pulls_in_flight: int = 0
    pulls_joined_total: int = 0  # pulls that shared an in-flight pull of the same image
    bytes_downloaded_total: int = 0
    layers_downloaded_total: int = 0
    layers_reused_total: int = 0  # already unpacked, not downloaded
    pull_seconds_total: float = 0.0
    images_removed_total: int = 0
    layers_removed_total: int = 0

    def snapshot(self) -> dict[str, float]:
        """The counters as a flat name -> value map."""
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass
class _Download:
    digest: str
    size_bytes: int
    received_bytes: int = 0
    started_s: float = dataclasses.field(default_factory=time.monotonic)
    done: bool = False


class PullProgress:
    """Tracks the downloads of one pull and logs them periodically and at the end."""

    def __init__(self, what: str, metrics: PullMetrics) -> None:
        self.what = what
        self.metrics = metrics
        self.started_s = time.monotonic()
        self._downloads: dict[str, _Download] = {}
        self._reporter: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin periodic reporting (call from the event loop)."""
        self._reporter = asyncio.create_task(self._report_periodically())

    def stop(self) -> None:
        """Stop periodic reporting."""
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None

    def download(self, digest: str, size_bytes: int) -> _Download:
        """Register a download and return its tracker."""
        download = _Download(digest, size_bytes)
        self._downloads[digest] = download
        return download

    def received(self, download: _Download, nbytes: int) -> None:
        """Count `nbytes` arriving for `download`."""
        download.received_bytes += nbytes
        self.metrics.bytes_downloaded_total += nbytes

    def finished(self, download: _Download) -> None:
        """Log a finished download with its rate."""
        download.done = True
        self.metrics.layers_downloaded_total += 1
        elapsed_s = max(time.monotonic() - download.started_s, 1e-6)
        log.info(
            "%s: layer %s: %.1f MiB in %.2f s (%.1f MiB/s)",
            self.what,
            download.digest[:19],
            download.received_bytes / MIB,
            elapsed_s,
            download.received_bytes / MIB / elapsed_s,
        )

    @property
    def received_bytes(self) -> int:
        """Bytes received by every download of this pull so far."""
        return sum(d.received_bytes for d in self._downloads.values())

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            for download in self._downloads.values():
                if download.done:
                    continue
                elapsed_s = max(time.monotonic() - download.started_s, 1e-6)
                log.info(
                    "%s: layer %s: %.1f of %.1f MiB (%.1f MiB/s)",
                    self.what,
                    download.digest[:19],
                    download.received_bytes / MIB,
                    download.size_bytes / MIB,
                    download.received_bytes / MIB / elapsed_s,
                )
