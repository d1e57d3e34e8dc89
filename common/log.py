"""Logging set-up shared by the daemon and the command-line tools."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")


def setup(level: str, stream: TextIO | None = None) -> None:
    """Log to stderr (or `stream`) at `level`, one line per record, with a UTC timestamp."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # grpc and asyncio narrate their internals at debug; crib's debug is about RPCs.
    for noisy in ("grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
