"""The composition root: build the service, recover state, serve gRPC, drain on SIGTERM.

Start-up order (each step can stop start-up with a one-line error):
  1. create the roots, take the daemon locks (<state>/crib.pid and <root>/crib.lock:
     flock, so a crib killed by SIGKILL never blocks its successor)
  2. load persisted records (refuse unknown versions), ask each runtime handler for its
     `features`, then recover: check every sandbox against the kernel (pause alive with
     the same start time, pins present), sweep orphan pins and run dirs, and DEL leaked
     CNI attachments (cni GC); then every container (sandboxes first: containers live in
     them): init alive with the same start time, else its exit from conmon's files;
     half-created ones torn down, orphan bundles and snapshots swept
  3. replace a stale socket left by a killed crib (we hold the lock, so it is nobody's)
  4. serve RuntimeService and ImageService on the unix socket, mode 0660
  5. serve exec/attach/port-forward on `streaming.address`:`streaming.port` (HTTP; its
     URLs carry the bound address, so port 0 works)
Shutdown (SIGTERM or SIGINT): end streaming sessions, stop accepting calls, let in-flight
ones finish for up to `drain_timeout_s`, exit 0. Pods and containers keep running: conmon
and the pause processes do not depend on the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from common.errors import UnavailableError
from common.pidlock import PidLock
from cri import __version__
from cri.api import api_pb2 as pb
from cri.config import Config
from cri.edge import Edge, Observer, unimplemented_stream, unimplemented_unary
from cri.prometheus import MetricsServer
from cri.rpc import HANDLERS
from cri.service import CriService
from sandbox.monitor import proc

log = logging.getLogger("crib.server")

# kubelet's client caps messages at 16 MiB; like CRI-O we accept more so that a large
# request from another client is not refused by the transport.
MAX_MESSAGE_BYTES = 80 * 1024 * 1024
SOCKET_MODE = 0o660


def generic_handlers(
    edge: Edge, handlers: Mapping[str, Callable[..., Any]]
) -> list[grpc.GenericRpcHandler]:
    """One gRPC generic handler per CRI service, covering every RPC of the API.

    RPCs without an entry in `handlers` answer UNIMPLEMENTED naming themselves.
    """
    result = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for method in service.methods:
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            if method.server_streaming:
                stream = handlers.get(method.name) or unimplemented_stream(method.name)
                methods[method.name] = grpc.unary_stream_rpc_method_handler(
                    edge.stream(method.name, stream),
                    request_deserializer=request_type.FromString,
                    response_serializer=response_type.SerializeToString,
                )
            else:
                unary = handlers.get(method.name) or unimplemented_unary(method.name)
                methods[method.name] = grpc.unary_unary_rpc_method_handler(
                    edge.unary(method.name, unary),
                    request_deserializer=request_type.FromString,
                    response_serializer=response_type.SerializeToString,
                )
        result.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return result


def build_server(
    service: object,
    handlers: Mapping[str, Callable[..., Any]] = HANDLERS,
    observers: list[Observer] | None = None,
) -> grpc.aio.Server:
    """A grpc.aio server with every CRI RPC registered through the edge; `observers` see
    every finished call (the Prometheus endpoint's counters)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    server.add_generic_rpc_handlers(generic_handlers(Edge(service, observers), handlers))
    return server


def listen_unix(server: grpc.aio.Server, socket_path: str) -> None:
    """Bind `socket_path`, replacing a stale socket file (the caller holds the daemon lock)."""
    os.makedirs(os.path.dirname(socket_path), mode=0o711, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    try:
        server.add_insecure_port(f"unix:{socket_path}")
    except RuntimeError as err:
        raise UnavailableError(f"cannot listen on {socket_path}: {err}") from None


class Daemon:
    """One running crib: locks, service, gRPC server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.service = CriService(config)
        self._locks = [
            PidLock(os.path.join(config.state, "crib.pid")),
            PidLock(os.path.join(config.root, "crib.lock")),
        ]
        self._server: grpc.aio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._metrics: MetricsServer | None = None

    async def start(self) -> None:
        """Lock, load state and start serving. Raises `DomainError` on failure."""
        self.service.prepare_dirs()
        # conmon double-forks; as subreaper crib inherits and reaps its monitors, and the
        # orphan reaper collects whatever else ends up below it (user-asks #19).
        proc.set_child_subreaper()
        self._reaper = asyncio.create_task(proc.OrphanReaper().run(), name="orphan reaper")
        acquired: list[PidLock] = []
        try:
            for lock in self._locks:
                lock.acquire()
                acquired.append(lock)
            await asyncio.to_thread(self.service.load)
            await asyncio.to_thread(self.service.load_records)
            await self.service.recover()
            prometheus = self.service.prometheus
            observers: list[Observer] = [prometheus.observe_rpc] if prometheus else []
            server = build_server(self.service, observers=observers)
            listen_unix(server, self.config.listen)
            await server.start()
            try:
                await self.service.streaming.start()
            except OSError as err:
                await server.stop(grace=None)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.config.listen)
                raise UnavailableError(
                    f"cannot listen on streaming {self.config.streaming.address}"
                    f":{self.config.streaming.port}: {err.strerror}"
                ) from None
            if prometheus is not None:
                metrics = MetricsServer(prometheus, self.config.metrics.address)
                try:
                    await metrics.start()
                except OSError as err:
                    await self.service.streaming.stop()
                    await server.stop(grace=None)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.config.listen)
                    raise UnavailableError(
                        f"cannot listen on metrics.address {self.config.metrics.address}:"
                        f" {err.strerror}"
                    ) from None
                self._metrics = metrics
        except BaseException:
            self._reaper.cancel()
            for lock in acquired:
                lock.release()
            raise
        os.chmod(self.config.listen, SOCKET_MODE)
        self._server = server
        log.info(
            "crib %s serving CRI v1 on %s (root %s, state %s)",
            __version__,
            self.config.listen,
            self.config.root,
            self.config.state,
        )

    async def stop(self) -> None:
        """End streaming sessions, refuse new calls, let in-flight ones finish (bounded),
        release the locks."""
        # Exec/attach/port-forward sessions can last hours: they end now (their exec'd
        # processes are killed by the runtime), they are not waited for.
        await self.service.streaming.stop()
        # GetContainerEvents streams last until the client leaves: end them, or the
        # drain below would wait for them to its limit.
        self.service.events.close()
        if self._metrics is not None:
            await self._metrics.stop()
            self._metrics = None
        if self._server is not None:
            log.info("draining in-flight calls (up to %.0f s)", self.config.drain_timeout_s)
            await self._server.stop(grace=self.config.drain_timeout_s)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.config.listen)
        await self.service.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for lock in self._locks:
            lock.release()
        log.info("crib stopped")


async def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return."""
    daemon = Daemon(config)
    await daemon.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await daemon.stop()
