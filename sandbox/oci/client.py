"""A client for runc-compatible OCI runtimes (crib-runtime, runc, crun).

Every call is one `RUNTIME --root ROOT COMMAND ...` process (asyncio subprocess, so the
daemon never forks without exec). The runtime's stderr becomes the error message; the
texts runc, crun and crib-runtime print for an unknown or stopped container map to
`OciContainerNotFoundError`, so Stop/Remove can treat "already gone" as success (CRI-O
maps the same strings, internal/oci/runtime_oci.go).

    create --bundle B --pid-file P [--console-socket S] [--no-pivot] ID   (usually via conmon)
    start ID | state ID | kill [--all] ID SIGNAL | delete [--force] ID
    update --resources - ID        (LinuxResources JSON on stdin)
    exec --process FILE [--pid-file P] [--detach] [--console-socket S] ID
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.oci.errors import (
    OciContainerNotFoundError,
    OciRuntimeError,
    OciRuntimeMissingError,
    OciRuntimeTimeoutError,
)

# Substrings of runtime stderr meaning "no such container" or "not running".
NOT_FOUND_MARKERS = (
    "does not exist",
    "not running",
    "no such process",
    "invalid process",
    "container not found",
    # crun: error opening file `<root>/<id>/status`: No such file or directory
    "status`: no such file or directory",
)
DEFAULT_TIMEOUT_S = 60.0
# runc logs through logrus: time="..." level=error msg="container does not exist"
_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass(frozen=True)
class OciState:
    """`RUNTIME state ID` output (OCI runtime spec "State")."""

    container_id: str
    status: str  # creating, created, running, stopped (runc also: paused)
    pid: int
    bundle: str
    annotations: dict[str, str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> OciState:
        """Read the runtime's JSON."""
        return cls(
            container_id=str(doc.get("id", "")),
            status=str(doc.get("status", "")),
            pid=int(doc.get("pid") or 0),
            bundle=str(doc.get("bundle", "")),
            annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
        )


def stderr_message(stderr: bytes) -> str:
    """The runtime's error text, one line: logrus `msg="..."` values when present."""
    text = stderr.decode(errors="replace").strip()
    messages = [m.replace('\\"', '"') for m in _LOGRUS_MSG.findall(text)]
    if messages:
        return "; ".join(messages)
    return " ".join(text.split())


def is_not_found(message: str) -> bool:
    """Whether a runtime's error text says the container is unknown or not running."""
    lowered = message.lower()
    return any(marker in lowered for marker in NOT_FOUND_MARKERS)


class RuntimeClient:
    """One runtime handler: a binary and its state root."""

    def __init__(self, path: str, root: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = path
        self.root = root
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        """The binary's base name, for messages."""
        return os.path.basename(self.path)

    def argv(self, *args: str) -> list[str]:
        """The full command line of one runtime call."""
        return [self.path, "--root", self.root, *args]

    async def run(
        self,
        *args: str,
        stdin_data: bytes | None = None,
        timeout_s: float | None = None,
        pass_fds: Sequence[int] = (),
    ) -> bytes:
        """Run one command; returns stdout or raises an `OciRuntimeError`."""
        command = args[0] if args else ""
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(*args),
                stdin=asyncio.subprocess.PIPE
                if stdin_data is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        except OSError as err:
            raise OciRuntimeMissingError(
                f"cannot run {self.path}: {err.strerror}", command
            ) from None
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(stdin_data), timeout_s or self.timeout_s
            )
        except TimeoutError:
            _kill_group(process.pid)
            await process.communicate()  # reap it and close its pipes
            raise OciRuntimeTimeoutError(
                f"{self.name} {command} did not finish within {timeout_s or self.timeout_s:g} s",
                command,
            ) from None
        except BaseException:
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(process.communicate())
            raise
        if process.returncode != 0:
            message = stderr_message(stderr) or f"exit status {process.returncode}"
            cls = OciContainerNotFoundError if is_not_found(message) else OciRuntimeError
            target = args[-1] if len(args) > 1 else ""
            raise cls(f"{self.name} {command} {target}: {message}", command, message)
        return stdout

    # -- the commands -----------------------------------------------------------------------

    async def create(
        self,
        container_id: str,
        bundle: str,
        pid_file: str,
        console_socket: str = "",
        no_pivot: bool = False,
    ) -> None:
        """`create`: the container's init exists and waits for `start`.

        Note: the init is re-parented to the nearest subreaper when the runtime exits; the
        daemon normally creates through conmon (sandbox.monitor), which is that subreaper.
        """
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        if no_pivot:
            args.append("--no-pivot")
        await self.run(*args, container_id)

    async def start(self, container_id: str) -> None:
        """`start`: run the user process of a created container."""
        await self.run("start", container_id)

    async def state(self, container_id: str) -> OciState:
        """`state`: status and init pid (`OciContainerNotFoundError` if unknown)."""
        out = await self.run("state", container_id)
        try:
            return OciState.from_json(json.loads(out))
        except (ValueError, TypeError) as err:
            raise OciRuntimeError(
                f"{self.name} state {container_id}: unreadable output: {err}", "state"
            ) from None

    async def kill(
        self, container_id: str, signal_name: str = "KILL", all_processes: bool = False
    ) -> None:
        """`kill`: send a signal to the init (or to every process with `all_processes`)."""
        args = ["kill"]
        if all_processes:
            args.append("--all")
        await self.run(*args, container_id, signal_name)

    async def delete(self, container_id: str, force: bool = False) -> None:
        """`delete`: drop the runtime's state and the container's cgroup.

        A container the runtime does not know is already deleted: that is not an error.
        """
        args = ["delete"]
        if force:
            args.append("--force")
        try:
            await self.run(*args, container_id)
        except OciContainerNotFoundError:
            pass

    async def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """`update --resources -`: apply OCI LinuxResources to a running container."""
        await self.run(
            "update", "--resources", "-", container_id, stdin_data=json.dumps(resources).encode()
        )

    async def features(self, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """`features` (OCI runtime-spec features.md): what the runtime supports, or None
        when it cannot say (crun 1.8 and older runtimes lack the command)."""
        try:
            out = await self.run("features", timeout_s=timeout_s)
            doc = json.loads(out)
        except (OciRuntimeError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    async def exec(
        self,
        container_id: str,
        process_path: str,
        pid_file: str = "",
        detach: bool = False,
        console_socket: str = "",
    ) -> bytes:
        """`exec --process FILE`: run a process in the container (see docs/conmon.md 5)."""
        args = ["exec", "--process", process_path]
        if pid_file:
            args += ["--pid-file", pid_file]
        if detach:
            args.append("--detach")
        if console_socket:
            args += ["--console-socket", console_socket]
        return await self.run(*args, container_id)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
