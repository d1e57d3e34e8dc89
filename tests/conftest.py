"""Test tiers: unit (default, no root), `root` (kernel work) and `e2e` (the real daemon).

Tests marked `root` are skipped with a reason when not running as root, so
`pytest tests/unit` works anywhere and `sudo make test` runs everything.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip_root = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip_root)
