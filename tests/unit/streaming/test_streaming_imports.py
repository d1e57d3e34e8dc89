"""The streaming server's own import rules (on top of tests/unit/test_import_rules.py).

- nothing under cri/streaming imports grpc or protobuf: the RPC handlers pass requests
  in, and the server reads them structurally;
- cri/streaming/spdy.py, the sans-I/O protocol core, imports nothing of crib.
"""

from __future__ import annotations

import pathlib

from tests.unit.test_import_rules import OURS, REPO, imports_of

STREAMING = REPO / "cri" / "streaming"


def test_streaming_never_imports_grpc_or_protobuf() -> None:
    for path in sorted(STREAMING.rglob("*.py")):
        assert not imports_of(path) & {"grpc", "google"}, path.relative_to(REPO)


def test_the_spdy_core_imports_nothing_in_project() -> None:
    assert not imports_of(STREAMING / "spdy.py") & OURS


def test_relative_imports_are_not_used_to_dodge_the_rules() -> None:
    for path in sorted(STREAMING.rglob("*.py")):
        text = pathlib.Path(path).read_text()
        assert "from ." not in text, path.relative_to(REPO)
