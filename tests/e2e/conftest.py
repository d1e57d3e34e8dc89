"""The e2e fixture: a real crib on a temporary socket, driven over gRPC like kubelet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.daemon import CribDaemon, running_crib


@pytest.fixture
def crib() -> Iterator[CribDaemon]:
    """A running crib with the embedded defaults (temporary roots, empty CNI conf dir)."""
    with running_crib() as daemon:
        yield daemon
