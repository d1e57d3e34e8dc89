"""Starting, stopping and deleting a pod's pause process under conmon.

    start:  write <bundle>/config.json ─► conmon create (runtime create under conmon,
            which is the pause's subreaper) ─► runtime start ─► PauseProcess(pid, start
            time, conmon pid)
    stop:   runtime kill KILL (the pause ignores nothing it cannot) ─► wait for the pid to
            go (pidfd); if the runtime no longer knows the container but the recorded
            process is still there, SIGKILL it directly
    delete: runtime delete --force (its state and the pause's cgroup leaf)

The daemon never waits on the pause itself: conmon reaps it and records its exit status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
from typing import Any

from sandbox.monitor import proc
from sandbox.monitor.conmon import Conmon, CreateSpec
from sandbox.oci.client import RuntimeClient
from sandbox.oci.errors import OciContainerNotFoundError
from sandbox.pod.errors import PodError

log = logging.getLogger("crib.pod")

STOP_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True)
class PauseProcess:
    """A running pause: pid + start time (the PID-reuse guard) and its conmon."""

    pid: int
    start_time: int
    conmon_pid: int

    def is_alive(self) -> bool:
        """Whether this very process still runs."""
        return proc.is_alive(self.pid, self.start_time)


class PauseRunner:
    """Runs pause processes through conmon and a runc-compatible runtime."""

    def __init__(self, conmon: Conmon, create_timeout_s: float = 240.0) -> None:
        self.conmon = conmon
        self.create_timeout_s = create_timeout_s

    async def start(
        self,
        runtime: RuntimeClient,
        sandbox_id: str,
        name: str,
        bundle_dir: str,
        config: dict[str, Any],
    ) -> PauseProcess:
        """Create and start the pause; on failure nothing of it is left running."""
        os.makedirs(bundle_dir, mode=0o700, exist_ok=True)
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        spec = CreateSpec(
            container_id=sandbox_id,
            name=name,
            bundle_dir=bundle_dir,
            persist_dir=os.path.join(bundle_dir, "persist"),
            log_path=os.path.join(bundle_dir, "pause.log"),
            runtime_path=runtime.path,
            runtime_root=runtime.root,
            timeout_s=self.create_timeout_s,
        )
        created = await self.conmon.create(spec)
        try:
            started_at = proc.start_time(created.container_pid)
            if started_at is None:
                raise PodError(f"pause of {sandbox_id}: pid {created.container_pid} is gone")
            await runtime.start(sandbox_id)
        except BaseException:
            with contextlib.suppress(Exception):
                await runtime.delete(sandbox_id, force=True)
            raise
        return PauseProcess(created.container_pid, started_at, created.conmon_pid)

    async def stop(
        self,
        runtime: RuntimeClient,
        sandbox_id: str,
        pause: PauseProcess | None,
        timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        """Kill the pause (and with a pod PID namespace, everything in it) and wait."""
        try:
            await runtime.kill(sandbox_id, "KILL")
        except OciContainerNotFoundError:
            # Stopped already, or the runtime lost it: the recorded process decides.
            if pause is not None and pause.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pause.pid, signal.SIGKILL)
        if pause is None:
            return
        if not await proc.wait_exit(pause.pid, pause.start_time, timeout_s):
            raise PodError(
                f"pause of {sandbox_id} (pid {pause.pid}) still runs {timeout_s:g} s after SIGKILL"
            )

    async def delete(self, runtime: RuntimeClient, sandbox_id: str) -> None:
        """Drop the runtime's state of the pause (and its cgroup); gone already is fine."""
        await runtime.delete(sandbox_id, force=True)
