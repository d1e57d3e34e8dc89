"""The exec'd netns helper's failure paths (no root needed)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from cri.streaming.netns import HELPER_PATH, NetnsConnectError, connect_in_netns


def test_a_missing_namespace_is_reported_with_its_path(tmp_path: object) -> None:
    missing = f"{tmp_path}/no-such-netns"
    with pytest.raises(NetnsConnectError) as caught:
        asyncio.run(connect_in_netns(missing, 80))
    message = str(caught.value)
    assert message.startswith(f"failed to connect to localhost:80 inside namespace {missing}")
    assert "No such file or directory" in message


def test_the_helper_runs_without_site_packages() -> None:
    # -I -S: it must import nothing outside the standard library (start-up budget).
    result = subprocess.run(
        [sys.executable, "-I", "-S", HELPER_PATH],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "usage: netns_connect.py NETNS_PATH PORT FD" in result.stderr
