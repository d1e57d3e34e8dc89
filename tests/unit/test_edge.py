"""The error edge and the gRPC server wiring, in process on a temporary unix socket."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from common.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    ErrorKind,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
    UnimplementedError,
)
from cri import edge
from cri.api import api_pb2 as pb
from cri.api import api_pb2_grpc as pb_grpc
from cri.server import build_server


def test_every_kind_has_a_code() -> None:
    assert set(edge.CODES) == set(ErrorKind)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgumentError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExistsError("x"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPreconditionError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (ResourceExhaustedError("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (UnavailableError("x"), grpc.StatusCode.UNAVAILABLE),
        (UnimplementedError("x"), grpc.StatusCode.UNIMPLEMENTED),
        (DeadlineExceededError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (InternalError("x"), grpc.StatusCode.INTERNAL),
        (TimeoutError(), grpc.StatusCode.DEADLINE_EXCEEDED),
        (KeyError("bug"), grpc.StatusCode.UNKNOWN),
    ],
)
def test_status_of(error: Exception, code: grpc.StatusCode) -> None:
    assert edge.status_of(error)[0] is code


Handlers = dict[str, Callable[..., Any]]


def serve_and_call(
    tmp_path: pathlib.Path,
    handlers: Handlers,
    call: Callable[[pb_grpc.RuntimeServiceStub, pb_grpc.ImageServiceStub], Awaitable[Any]],
) -> Any:
    socket_path = str(tmp_path / "s.sock")

    async def scenario() -> Any:
        server = build_server(object(), handlers)
        server.add_insecure_port(f"unix:{socket_path}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
                return await call(
                    pb_grpc.RuntimeServiceStub(channel), pb_grpc.ImageServiceStub(channel)
                )
        finally:
            await server.stop(grace=None)

    return asyncio.run(scenario())


async def expect_error(awaitable: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await awaitable
    except grpc.aio.AioRpcError as err:
        return err
    raise AssertionError("the call succeeded")


def test_unbuilt_rpcs_are_unimplemented_naming_the_rpc(tmp_path: pathlib.Path) -> None:
    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> list[Any]:
        return [
            await expect_error(rt.RunPodSandbox(pb.RunPodSandboxRequest())),
            await expect_error(img.PullImage(pb.PullImageRequest())),
        ]

    errors = serve_and_call(tmp_path, {}, call)
    assert [e.code() for e in errors] == [grpc.StatusCode.UNIMPLEMENTED] * 2
    assert "RunPodSandbox" in errors[0].details()
    assert "PullImage" in errors[1].details()


def test_unbuilt_stream_rpc_is_unimplemented(tmp_path: pathlib.Path) -> None:
    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> Any:
        async def consume() -> None:
            async for _ in img.StreamImages(pb.StreamImagesRequest()):
                pass

        return await expect_error(consume())

    err = serve_and_call(tmp_path, {}, call)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "StreamImages" in err.details()


def test_domain_error_maps_to_its_code(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(service: object, request: pb.ContainerStatusRequest) -> Any:
        raise NotFoundError(f"container {request.container_id} not found")

    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> Any:
        return await expect_error(rt.ContainerStatus(pb.ContainerStatusRequest(container_id="c1")))

    with caplog.at_level(logging.DEBUG, logger="crib.rpc"):
        err = serve_and_call(tmp_path, {"ContainerStatus": handler}, call)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "container c1 not found"
    warnings = [r for r in caplog.records if r.name == "crib.rpc"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "ContainerStatus" in warnings[0].getMessage()
    assert warnings[0].exc_info is None


def test_bug_is_unknown_and_logged_once_with_traceback(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(service: object, request: Any) -> Any:
        return {}["missing"]

    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> Any:
        return await expect_error(rt.Version(pb.VersionRequest()))

    with caplog.at_level(logging.DEBUG, logger="crib.rpc"):
        err = serve_and_call(tmp_path, {"Version": handler}, call)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert "KeyError" in err.details()
    records = [r for r in caplog.records if r.name == "crib.rpc"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None


def test_success_logged_once_at_debug_with_duration(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(service: object, request: Any) -> pb.VersionResponse:
        return pb.VersionResponse(runtime_name="t")

    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> Any:
        return await rt.Version(pb.VersionRequest())

    with caplog.at_level(logging.DEBUG, logger="crib.rpc"):
        response = serve_and_call(tmp_path, {"Version": handler}, call)
    assert response.runtime_name == "t"
    records = [r for r in caplog.records if r.name == "crib.rpc"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "Version ok in" in records[0].getMessage()
    assert "ms" in records[0].getMessage()


def test_stream_handler_items_then_error(tmp_path: pathlib.Path) -> None:
    async def handler(service: object, request: Any) -> AsyncIterator[pb.StreamImagesResponse]:
        yield pb.StreamImagesResponse(images=[pb.Image(id="sha256:a")])
        yield pb.StreamImagesResponse(images=[pb.Image(id="sha256:b")])
        raise UnavailableError("store went away")

    async def call(rt: pb_grpc.RuntimeServiceStub, img: pb_grpc.ImageServiceStub) -> Any:
        seen: list[str] = []
        try:
            async for chunk in img.StreamImages(pb.StreamImagesRequest()):
                seen.extend(i.id for i in chunk.images)
        except grpc.aio.AioRpcError as err:
            return seen, err.code(), err.details()
        return seen, None, None

    seen, code, details = serve_and_call(tmp_path, {"StreamImages": handler}, call)
    assert seen == ["sha256:a", "sha256:b"]
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details == "store went away"


def test_observers_see_every_call(tmp_path: pathlib.Path) -> None:
    seen: list[tuple[str, str]] = []
    wrapper = edge.Edge(object(), [lambda rpc, code, elapsed_s: seen.append((rpc, code))])

    async def ok(service: object, request: Any) -> pb.VersionResponse:
        return pb.VersionResponse()

    async def scenario() -> None:
        class Context:
            async def abort(self, code: grpc.StatusCode, details: str) -> None:
                raise RuntimeError(details)

        await wrapper.unary("Version", ok)(pb.VersionRequest(), Context())  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await wrapper.unary("Status", edge.unimplemented_unary("Status"))(
                pb.StatusRequest(),
                Context(),  # type: ignore[arg-type]
            )

    asyncio.run(scenario())
    assert seen == [("Version", "OK"), ("Status", "UNIMPLEMENTED")]


def test_stop_lets_in_flight_calls_finish(tmp_path: pathlib.Path) -> None:
    socket_path = str(tmp_path / "s.sock")
    started = asyncio.Event

    async def scenario() -> tuple[str, grpc.StatusCode]:
        entered = started()

        async def slow(service: object, request: Any) -> pb.VersionResponse:
            entered.set()
            await asyncio.sleep(0.5)
            return pb.VersionResponse(runtime_name="finished")

        server = build_server(object(), {"Version": slow})
        server.add_insecure_port(f"unix:{socket_path}")
        await server.start()
        async with grpc.aio.insecure_channel(f"unix:{socket_path}") as channel:
            stub = pb_grpc.RuntimeServiceStub(channel)
            in_flight = asyncio.ensure_future(stub.Version(pb.VersionRequest()))
            await entered.wait()
            stopping = asyncio.ensure_future(server.stop(grace=5))
            await asyncio.sleep(0.05)
            # A new call after stop() began is refused.
            late = await expect_error(stub.Status(pb.StatusRequest(), timeout=2))
            response = await in_flight
            await stopping
            return response.runtime_name, late.code()

    name, late_code = asyncio.run(scenario())
    assert name == "finished"
    assert late_code == grpc.StatusCode.UNAVAILABLE
