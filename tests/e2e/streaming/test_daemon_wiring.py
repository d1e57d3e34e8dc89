"""The daemon starts the streaming server after gRPC and stops it when it drains."""

from __future__ import annotations

import re
import socket
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests.e2e.daemon import CribDaemon, running_crib

pytestmark = pytest.mark.e2e


def streaming_url(daemon: CribDaemon) -> str:
    match = re.search(r"streaming server \(exec, attach, port-forward\) on (\S+)", daemon.log())
    assert match, daemon.log()
    return match.group(1)


def test_streaming_server_listens_with_the_daemon_and_stops_with_it() -> None:
    with running_crib() as daemon:
        url = streaming_url(daemon)
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0/")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url + "exec/AAAAAAAA", timeout=5)
        assert caught.value.code == 404  # no such token
        caught.value.close()
        # The RPCs check the container before minting a URL.
        with pytest.raises(grpc.RpcError) as rpc_error:
            daemon.runtime().Exec(pb.ExecRequest(container_id="c", cmd=["ls"], stdout=True))
        assert rpc_error.value.code() == grpc.StatusCode.NOT_FOUND
        assert daemon.stop() == 0
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()


def test_configured_port_is_used() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_crib(streaming={"address": "127.0.0.1", "port": port}) as daemon:
        assert streaming_url(daemon) == f"http://127.0.0.1:{port}/"


def test_a_busy_streaming_port_stops_start_up_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        daemon = CribDaemon(streaming={"address": "127.0.0.1", "port": port})
        try:
            process = daemon.spawn()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            assert process.returncode != 0
            assert f"127.0.0.1:{port}" in daemon.log()
        finally:
            daemon.cleanup()
