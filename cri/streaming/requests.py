"""Exec, Attach and PortForward requests: validated, then kept until their URL is used.

The streaming server never imports the generated protobuf code (only `cri/rpc` does); it
reads the request fields it needs through the structural types below, which the CRI
messages (`api_pb2.ExecRequest`, ...) satisfy, and keeps frozen copies of them.
Validation follows k8s.io/cri-streaming server.go (GetExec/GetAttach/GetPortForward).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from cri.streaming.errors import StreamingRequestInvalidError


class AttachRequestLike(Protocol):
    """The fields of a CRI AttachRequest the server uses."""

    @property
    def container_id(self) -> str: ...
    @property
    def tty(self) -> bool: ...
    @property
    def stdin(self) -> bool: ...
    @property
    def stdout(self) -> bool: ...
    @property
    def stderr(self) -> bool: ...


class ExecRequestLike(AttachRequestLike, Protocol):
    """The fields of a CRI ExecRequest the server uses: an attach's, and the command."""

    @property
    def cmd(self) -> Sequence[str]: ...


class PortForwardRequestLike(Protocol):
    """The fields of a CRI PortForwardRequest the server uses."""

    @property
    def pod_sandbox_id(self) -> str: ...
    @property
    def port(self) -> Sequence[int]: ...


@dataclasses.dataclass(frozen=True)
class ExecSpec:
    """A validated exec request."""

    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclasses.dataclass(frozen=True)
class AttachSpec:
    """A validated attach request."""

    container_id: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclasses.dataclass(frozen=True)
class PortForwardSpec:
    """A validated port-forward request (the ports matter only to WebSocket clients)."""

    sandbox_id: str
    ports: tuple[int, ...]


StreamSpec = ExecSpec | AttachSpec | PortForwardSpec


def _check_stdio(container_id: str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    if not container_id:
        raise StreamingRequestInvalidError("container_id: missing (required)")
    if tty and stderr:
        # One pty carries stdout and stderr together; they cannot be told apart.
        raise StreamingRequestInvalidError(
            f"container {container_id}: tty and stderr cannot both be true"
        )
    if not (stdin or stdout or stderr):
        raise StreamingRequestInvalidError(
            f"container {container_id}: one of stdin, stdout, or stderr must be set"
        )


def exec_spec(request: ExecRequestLike) -> ExecSpec:
    """Validate an ExecRequest; raises `StreamingRequestInvalidError` naming the field."""
    _check_stdio(request.container_id, request.tty, request.stdin, request.stdout, request.stderr)
    if not request.cmd:
        raise StreamingRequestInvalidError(f"container {request.container_id}: cmd: empty")
    return ExecSpec(
        request.container_id,
        tuple(request.cmd),
        request.tty,
        request.stdin,
        request.stdout,
        request.stderr,
    )


def attach_spec(request: AttachRequestLike) -> AttachSpec:
    """Validate an AttachRequest; raises `StreamingRequestInvalidError` naming the field."""
    _check_stdio(request.container_id, request.tty, request.stdin, request.stdout, request.stderr)
    return AttachSpec(
        request.container_id, request.tty, request.stdin, request.stdout, request.stderr
    )


def port_forward_spec(request: PortForwardRequestLike) -> PortForwardSpec:
    """Validate a PortForwardRequest; raises `StreamingRequestInvalidError` naming the field."""
    if not request.pod_sandbox_id:
        raise StreamingRequestInvalidError("pod_sandbox_id: missing (required)")
    for port in request.port:
        if not 1 <= port <= 65535:
            raise StreamingRequestInvalidError(
                f"sandbox {request.pod_sandbox_id}: port {port}: want 1-65535"
            )
    return PortForwardSpec(request.pod_sandbox_id, tuple(request.port))
