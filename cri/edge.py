"""The API edge: every RPC passes through here, and only here do errors become gRPC codes.

For each call the edge
  1. runs the handler with the request,
  2. logs one line: debug with the duration on success, warning on a `DomainError`,
     error with the traceback (once) on anything else,
  3. maps the outcome to a status: `DomainError.kind` through `CODES`, timeouts to
     DEADLINE_EXCEEDED, any other exception to UNKNOWN (a bug in crib).

Handlers never call `context.abort` and lower layers never log-and-reraise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message

from common.errors import DomainError, ErrorKind, UnimplementedError

log = logging.getLogger("crib.rpc")

# The only table from crib's error kinds to gRPC status codes.
CODES: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}

# What an RPC module provides: the handler gets the service object and the request.
UnaryHandler: TypeAlias = Callable[[Any, Any], Awaitable[Message]]
StreamHandler: TypeAlias = Callable[[Any, Any], AsyncIterator[Message]]
# Observers get (rpc name, status code name, duration in seconds) after every call;
# the metrics endpoint plugs in here.
Observer: TypeAlias = Callable[[str, str, float], None]


def status_of(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC code and message for an exception raised by a handler."""
    if isinstance(err, DomainError):
        return CODES[err.kind], str(err)
    if isinstance(err, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(err) or "operation timed out"
    return grpc.StatusCode.UNKNOWN, f"internal error: {type(err).__name__}: {err}"


class Edge:
    """Wraps RPC handlers with logging and error mapping, bound to one service object."""

    def __init__(self, service: object, observers: list[Observer] | None = None) -> None:
        self.service = service
        self.observers: list[Observer] = observers if observers is not None else []

    def _finish(self, rpc: str, started: float, err: BaseException | None) -> grpc.StatusCode:
        elapsed_s = time.monotonic() - started
        if err is None:
            code = grpc.StatusCode.OK
            log.debug("%s ok in %.1f ms", rpc, elapsed_s * 1000)
        else:
            code, message = status_of(err)
            if code is grpc.StatusCode.UNKNOWN:
                log.error("%s failed in %.1f ms: %s", rpc, elapsed_s * 1000, message, exc_info=err)
            else:
                log.warning(
                    "%s failed in %.1f ms: %s: %s", rpc, elapsed_s * 1000, code.name, message
                )
        for observe in self.observers:
            observe(rpc, code.name, elapsed_s)
        return code

    def unary(
        self, rpc: str, handler: UnaryHandler
    ) -> Callable[[Message, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]]:
        """A grpc.aio unary-unary behaviour running `handler` through the edge."""

        async def behaviour(
            request: Message, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Message:
            started = time.monotonic()
            try:
                response = await handler(self.service, request)
            except asyncio.CancelledError:
                # The client went away (or the server is stopping): nothing to answer.
                log.debug("%s cancelled after %.1f ms", rpc, (time.monotonic() - started) * 1000)
                raise
            except Exception as err:  # noqa: BLE001 - the edge is where everything lands
                code = self._finish(rpc, started, err)
                await context.abort(code, status_of(err)[1])
            self._finish(rpc, started, None)
            return response

        return behaviour

    def stream(
        self, rpc: str, handler: StreamHandler
    ) -> Callable[[Message, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Message]]:
        """A grpc.aio unary-stream behaviour running `handler` through the edge."""

        async def behaviour(
            request: Message, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            started = time.monotonic()
            try:
                async for item in handler(self.service, request):
                    yield item
            except asyncio.CancelledError:
                log.debug("%s cancelled after %.1f ms", rpc, (time.monotonic() - started) * 1000)
                raise
            except Exception as err:  # noqa: BLE001 - the edge is where everything lands
                code = self._finish(rpc, started, err)
                await context.abort(code, status_of(err)[1])
            self._finish(rpc, started, None)

        return behaviour


def unimplemented_unary(rpc: str) -> UnaryHandler:
    """A handler for an RPC crib does not offer yet: UNIMPLEMENTED naming the RPC."""

    async def handler(service: object, request: object) -> Message:
        raise UnimplementedError(f"{rpc} is not implemented by crib yet")

    return handler


def unimplemented_stream(rpc: str) -> StreamHandler:
    """A server-streaming handler for an RPC crib does not offer yet."""

    async def handler(service: object, request: object) -> AsyncIterator[Message]:
        raise UnimplementedError(f"{rpc} is not implemented by crib yet")
        yield  # type: ignore[unreachable]  # makes this an async generator

    return handler
