"""Exec/Attach/PortForward validation (k8s.io/cri-streaming GetExec/GetAttach/GetPortForward)."""

from __future__ import annotations

import asyncio

import pytest

from common.errors import ErrorKind
from cri.api import api_pb2 as pb
from cri.streaming.errors import StreamingRequestInvalidError, StreamingUnavailableError
from cri.streaming.requests import (
    AttachSpec,
    ExecSpec,
    PortForwardSpec,
    attach_spec,
    exec_spec,
    port_forward_spec,
)
from cri.streaming.runtime import UnwiredStreamingRuntime
from cri.streaming.server import StreamingServer


def test_the_cri_messages_are_read_as_they_are() -> None:
    request = pb.ExecRequest(container_id="c1", cmd=["ls", "-l"], stdout=True, stderr=True)
    assert exec_spec(request) == ExecSpec("c1", ("ls", "-l"), False, False, True, True)
    attach = pb.AttachRequest(container_id="c1", stdin=True, tty=True, stdout=True)
    assert attach_spec(attach) == AttachSpec("c1", True, True, True, False)
    forward = pb.PortForwardRequest(pod_sandbox_id="p1", port=[80, 8080])
    assert port_forward_spec(forward) == PortForwardSpec("p1", (80, 8080))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ExecRequest(cmd=["ls"], stdout=True), "container_id: missing"),
        (pb.ExecRequest(container_id="c1", cmd=["ls"], tty=True, stderr=True), "tty and stderr"),
        (pb.ExecRequest(container_id="c1", cmd=["ls"]), "one of stdin, stdout, or stderr"),
        (pb.ExecRequest(container_id="c1", stdout=True), "cmd: empty"),
    ],
)
def test_invalid_exec_requests(request_: pb.ExecRequest, message: str) -> None:
    with pytest.raises(StreamingRequestInvalidError, match=message) as caught:
        exec_spec(request_)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def test_invalid_attach_and_port_forward_requests() -> None:
    with pytest.raises(StreamingRequestInvalidError, match="tty and stderr"):
        attach_spec(pb.AttachRequest(container_id="c1", tty=True, stdout=True, stderr=True))
    with pytest.raises(StreamingRequestInvalidError, match="one of stdin"):
        attach_spec(pb.AttachRequest(container_id="c1"))
    with pytest.raises(StreamingRequestInvalidError, match="pod_sandbox_id: missing"):
        port_forward_spec(pb.PortForwardRequest(port=[80]))
    with pytest.raises(StreamingRequestInvalidError, match="port 70000"):
        port_forward_spec(pb.PortForwardRequest(pod_sandbox_id="p1", port=[70000]))


def test_urls_need_a_running_server() -> None:
    server = StreamingServer(UnwiredStreamingRuntime())
    with pytest.raises(StreamingUnavailableError):
        server.get_exec_url(pb.ExecRequest(container_id="c1", cmd=["ls"], stdout=True))


def test_urls_carry_the_bound_address_and_a_fresh_token() -> None:
    async def scenario() -> list[str]:
        server = StreamingServer(UnwiredStreamingRuntime(), "127.0.0.1", 0)
        await server.start()
        try:
            return [
                server.get_exec_url(pb.ExecRequest(container_id="c", cmd=["ls"], stdout=True)),
                server.get_attach_url(pb.AttachRequest(container_id="c", stdout=True)),
                server.get_port_forward_url(pb.PortForwardRequest(pod_sandbox_id="p")),
            ]
        finally:
            await server.stop()

    urls = asyncio.run(scenario())
    base = urls[0].rsplit("/", 2)[0]
    assert base.startswith("http://127.0.0.1:")
    assert not base.endswith(":0")
    assert [u.removeprefix(base).split("/")[1] for u in urls] == ["exec", "attach", "portforward"]
    assert len({u.rsplit("/", 1)[1] for u in urls}) == 3
