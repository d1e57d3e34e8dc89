"""`crib-runtime` command line (the runc subset conmon and the daemon use)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crib-runtime` console script."""
    sys.stderr.write("crib-runtime: not implemented yet\n")
    return 1
