"""Pod sandbox lifecycle: RunPodSandbox, StopPodSandbox, RemovePodSandbox, and recovery.

RunPodSandbox (record first, then acquire, with an undo registered for each step):

    validate ─► reserve name ─► record CREATING ─► run dir ─► /dev/shm tmpfs ─► hostname,
    resolv.conf ─► pause under conmon (new net/ipc/uts/pid ns, pod cgroup leaf) ─► pin
    namespaces ─► CNI ADD (lo, then the network on eth0) ─► /etc/hosts ─► record READY

Any failure unwinds the undo stack (newest first). If every undo succeeded the record is
deleted and the name freed; if one failed the record stays NOT_READY naming what is left,
and StopPodSandbox/RemovePodSandbox (whose steps are all idempotent) finish the job.

The creation runs in its own task: when kubelet's deadline cancels the RPC, the work goes
on and its result is remembered, and kubelet's retry (same name) gets that sandbox
instead of "name is reserved" (CRI-O's resourcestore, user-asks #4).

Stop: the pod's containers (hook) ─► kill the pause ─► CNI DEL (with the pinned netns, or
CNI_NETNS="" when the pin is gone: the IP is released either way) ─► unmount /dev/shm.
Remove: Stop's steps if needed ─► runtime delete (state + cgroup leaf) ─► unpin ─► run
dir ─► record ─► name.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from typing import Protocol

from cni.cache import Attachment
from cni.errors import CniError
from cni.manager import CniManager, PodNetwork, attachment_result
from common.binaries import resolve
from common.errors import DomainError, FailedPreconditionError, InvalidArgumentError
from cri.config import Config
from cri.pods import validate
from cri.pods.records import (
    RECORD_KIND,
    RECORD_VERSION,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
)
from cri.pods.undo import UndoStack
from cri.store import KeyedLock, NameReservedError, Record, RecordStore, Registrar
from sandbox.monitor import proc
from sandbox.oci.client import RuntimeClient
from sandbox.oci.errors import OciRuntimeError, OciRuntimeMissingError
from sandbox.pod import cgroup, files, pins, rootfs
from sandbox.pod.errors import PodConfigError, PodError
from sandbox.pod.pause import PauseProcess, PauseRunner
from sandbox.pod.spec import PauseSpec, allowed_oom_score_adj, pause_config

log = logging.getLogger("crib.pods")

SandboxStore = RecordStore[SandboxMetadata, SandboxStatus]
SandboxRecord = Record[SandboxMetadata, SandboxStatus]

# A listener gets (the sandbox record as of the event, event): "created" and "started" when
# the sandbox becomes ready, "stopped" when it stops being ready, "deleted" with the last
# record before removal. Sandbox events of GetContainerEvents come from here.
SandboxListener = Callable[[SandboxRecord, str], None]

# Annotations on the pause's OCI config (containerd's keys, read by tools and hooks).
CONTAINER_TYPE_ANNOTATION = "io.kubernetes.cri.container-type"


class PodContainers(Protocol):
    """What the pod lifecycle needs from the containers code (issue 6 provides it)."""

    async def stop_pod_containers(self, sandbox_id: str) -> None:
        """Stop every container of the sandbox (StopPodSandbox)."""
        ...

    async def remove_pod_containers(self, sandbox_id: str) -> None:
        """Remove every container of the sandbox (RemovePodSandbox)."""
        ...


class NoContainers:
    """The hook until containers exist: a pod has none."""

    async def stop_pod_containers(self, sandbox_id: str) -> None:
        """Nothing to stop."""

    async def remove_pod_containers(self, sandbox_id: str) -> None:
        """Nothing to remove."""


def new_sandbox_store(root: str) -> SandboxStore:
    """The store of sandbox records under `<root>/sandboxes`."""
    return RecordStore(
        os.path.join(root, "sandboxes"),
        RECORD_KIND,
        RECORD_VERSION,
        SandboxMetadata,
        SandboxStatus,
    )


class PodManager:
    """Creates, stops, removes and recovers pod sandboxes."""

    def __init__(
        self,
        config: Config,
        store: SandboxStore,
        registrar: Registrar,
        locks: KeyedLock,
        cni: CniManager,
        runner: PauseRunner,
        runtime_client: Callable[[str], RuntimeClient],
        containers: PodContainers | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.registrar = registrar
        self.locks = locks
        self.cni = cni
        self.runner = runner
        self.runtime_client = runtime_client
        self.containers: PodContainers = containers or NoContainers()
        self.pods_dir = os.path.join(config.state, "pods")
        self.ns_dir = os.path.join(config.state, "ns")
        self.pause_rootfs = os.path.join(config.root, "pause", "rootfs")
        self.stop_timeout_s = 10.0
        self._pause_args: tuple[str, ...] | None = None
        # resourcestore: creations in flight, and finished ones nobody received yet
        self._creating: dict[str, asyncio.Task[str]] = {}
        self._undelivered: dict[str, str] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self.listeners: list[SandboxListener] = []

    def _emit(self, sandbox_id: str, event: str, record: SandboxRecord | None = None) -> None:
        record = record or self.store.get(sandbox_id)
        if record is None:
            return
        for listener in self.listeners:
            try:
                listener(record, event)
            except Exception:
                log.exception("sandbox event listener failed")

    # -- lookups -----------------------------------------------------------------------------

    def resolve_id(self, sandbox_id: str) -> str | None:
        """The full id for `sandbox_id` or a unique prefix of one; None if there is none.

        An ambiguous prefix is INVALID_ARGUMENT naming the candidates' count.
        """
        if not sandbox_id:
            return None
        if self.store.get(sandbox_id) is not None:
            return sandbox_id
        matches = [r.record_id for r in self.store.list() if r.record_id.startswith(sandbox_id)]
        if len(matches) > 1:
            raise InvalidArgumentError(
                f"pod_sandbox_id {sandbox_id!r} is ambiguous: {len(matches)} sandboxes match"
            )
        return matches[0] if matches else None

    def require(self, sandbox_id: str) -> SandboxRecord:
        """The record of `sandbox_id` (or unique prefix); NOT_FOUND naming it otherwise."""
        full = self.resolve_id(sandbox_id)
        return self.store.require(full if full is not None else sandbox_id)

    # -- RunPodSandbox -----------------------------------------------------------------------

    async def run(self, plan: validate.SandboxPlan) -> str:
        """Create a sandbox for a checked request; returns its id (see module doc)."""
        name = plan.cri_name
        holder = self.registrar.holder(name)
        if holder is not None:
            in_flight = self._creating.get(name)
            if in_flight is not None:
                log.info("RunPodSandbox %s: joining the creation in flight (%s)", name, holder)
                sandbox_id = await asyncio.shield(in_flight)
                self._undelivered.pop(name, None)
                return sandbox_id
            if self._undelivered.get(name) == holder:
                del self._undelivered[name]
                log.info(
                    "RunPodSandbox %s: handing over %s made for a cancelled call", name, holder
                )
                return holder
            raise NameReservedError(name, holder)
        sandbox_id = secrets.token_hex(32)
        self.registrar.reserve(name, sandbox_id)
        task = asyncio.create_task(self._create(sandbox_id, plan), name=f"RunPodSandbox {name}")
        self._creating[name] = task

        def finished(done: asyncio.Task[str]) -> None:
            self._creating.pop(name, None)
            if not done.cancelled() and done.exception() is None:
                # Until an awaiting call takes it, the result is nobody's (resourcestore).
                self._undelivered[name] = done.result()

        task.add_done_callback(finished)
        sandbox_id = await asyncio.shield(task)
        self._undelivered.pop(name, None)
        return sandbox_id

    def _pause_command(self) -> tuple[str, ...]:
        if self._pause_args is None:
            binary = resolve(self.config.pause[0])
            if binary is None:
                raise FailedPreconditionError(
                    f"pause: {self.config.pause[0]} not found (config key 'pause')"
                )
            try:
                in_root = rootfs.ensure_rootfs(self.pause_rootfs, binary)
            except PodConfigError as err:
                raise FailedPreconditionError(f"{err} (config key 'pause')") from None
            self._pause_args = (in_root, *self.config.pause[1:])
        return self._pause_args

    async def _create(self, sandbox_id: str, plan: validate.SandboxPlan) -> str:
        async with self.locks.hold(sandbox_id):
            namespaces = plan.namespaces
            hostname = plan.hostname or (
                os.uname().nodename if namespaces.host_network else sandbox_id[:12]
            )
            metadata = SandboxMetadata(
                name=plan.name,
                namespace=plan.namespace,
                uid=plan.uid,
                attempt=plan.attempt,
                cri_name=plan.cri_name,
                created_at_ns=time.time_ns(),
                runtime_handler=plan.runtime_handler,
                labels=plan.labels,
                annotations=plan.annotations,
                hostname=hostname,
                log_directory=plan.log_directory,
                cgroup_parent=plan.cgroup_parent,
                cgroups_path=cgroup.leaf_path(plan.cgroup_parent, sandbox_id),
                namespaces=namespaces,
                port_mappings=plan.port_mappings,
                dns=plan.dns,
                sysctls=plan.sysctls,
                run_dir=os.path.join(self.pods_dir, sandbox_id),
                config=plan.config_json,
            )
            try:
                record = await asyncio.to_thread(
                    self.store.create, sandbox_id, metadata, SandboxStatus(SandboxState.CREATING)
                )
            except BaseException:
                self.registrar.release(plan.cri_name)
                raise
            undo = UndoStack()
            try:
                status = await self._acquire(record, plan, undo)
                await asyncio.to_thread(self.store.update_status, sandbox_id, lambda _: status)
            except BaseException as err:
                await self._undo_failed_create(record, undo, err)
                raise
            log.info(
                "sandbox %s (%s) ready: pause pid %s, ip %s",
                sandbox_id,
                plan.cri_name,
                status.pause.pid if status.pause else "-",
                status.ips[0] if status.ips else "-",
            )
        self._emit(sandbox_id, "created")
        self._emit(sandbox_id, "started")
        return sandbox_id

    async def _acquire(
        self, record: SandboxRecord, plan: validate.SandboxPlan, undo: UndoStack
    ) -> SandboxStatus:
        """Make every resource of the sandbox; each step registers its undo first."""
        sandbox_id, meta = record.record_id, record.metadata
        run_dir = meta.run_dir
        pod_files = files.PodFiles.under(run_dir)
        runtime = self.runtime_client(meta.runtime_handler)
        pause_args = await asyncio.to_thread(self._pause_command)

        undo.push("remove run dir", lambda: asyncio.to_thread(_rmtree, run_dir))
        await asyncio.to_thread(os.makedirs, run_dir, 0o711, True)

        shm_path = ""
        if not meta.namespaces.host_ipc:
            undo.push("unmount shm", lambda: asyncio.to_thread(files.unmount_shm, pod_files.shm))
            await asyncio.to_thread(files.mount_shm, pod_files.shm)
            shm_path = pod_files.shm
        await asyncio.to_thread(_write_identity_files, meta, pod_files)

        annotations = {
            **plan.resource_annotations,
            CONTAINER_TYPE_ANNOTATION: "sandbox",
            "io.kubernetes.cri.sandbox-id": sandbox_id,
            "io.kubernetes.cri.sandbox-name": meta.name,
            "io.kubernetes.cri.sandbox-namespace": meta.namespace,
            "io.kubernetes.cri.sandbox-uid": meta.uid,
            "io.kubernetes.cri.sandbox-log-directory": meta.log_directory,
        }
        config = pause_config(
            PauseSpec(
                args=pause_args,
                rootfs=self.pause_rootfs,
                hostname=meta.hostname,
                namespaces=meta.namespaces,
                cgroups_path=meta.cgroups_path,
                sysctls=meta.sysctls,
                shm_path=shm_path,
                uid=plan.uid_gid[0],
                gid=plan.uid_gid[1],
                additional_gids=plan.supplemental_groups,
                oom_score_adj=allowed_oom_score_adj(-998),
                annotations=annotations,
            )
        )
        # Registered before the start: a create cut short leaves runtime state to delete.
        undo.push("stop and delete the pause", lambda: self._delete_pause(record, None))
        pause = await self.runner.start(runtime, sandbox_id, meta.cri_name, run_dir, config)
        # Watch from the start: whatever happens next, crib notices the exit and reaps
        # the pause's conmon.
        self._watch(sandbox_id, pause)

        kinds = meta.namespaces.pinned_kinds()
        undo.push("unpin namespaces", lambda: asyncio.to_thread(self._unpin_all, sandbox_id))
        namespace_paths = await asyncio.to_thread(
            pins.pin_all, pause.pid, kinds, self.ns_dir, sandbox_id
        )
        if not pause.is_alive():
            # The pins may hold a recycled pid's namespaces: refuse rather than guess.
            raise PodError(f"pause of {sandbox_id} (pid {pause.pid}) exited during set-up")

        attachment: Attachment | None = None
        ips: tuple[str, ...] = ()
        if not meta.namespaces.host_network:
            netns = namespace_paths["net"]
            # A DEL follows every ADD, even a failed one (CNI SPEC "Lifecycle").
            undo.push("cni teardown", lambda: self.cni.teardown(sandbox_id, None, netns))
            attachment = await self.cni.setup(
                PodNetwork(
                    sandbox_id=sandbox_id,
                    pod_name=meta.name,
                    pod_namespace=meta.namespace,
                    pod_uid=meta.uid,
                    netns=netns,
                    port_mappings=meta.port_mappings,
                    bandwidth=plan.bandwidth,
                    cgroup_path=meta.cgroup_parent,
                    pod_annotations=meta.annotations,
                )
            )
            result = attachment_result(attachment)
            ips = tuple(result.pod_ips()) if result else ()
            hosts = files.hosts(meta.hostname, ips)
        else:
            hosts = files.host_hosts()
        await asyncio.to_thread(files.write_file, pod_files.hosts, hosts)
        return SandboxStatus(SandboxState.CREATING).moved_to(
            SandboxState.READY,
            pause=pause,
            namespace_paths=namespace_paths,
            attachment=attachment,
            ips=ips,
            network_torn_down=meta.namespaces.host_network,
        )

    async def _undo_failed_create(
        self, record: SandboxRecord, undo: UndoStack, err: BaseException
    ) -> None:
        sandbox_id = record.record_id
        failures = await undo.unwind()
        if not failures:
            await asyncio.to_thread(self.store.delete, sandbox_id)
            self.registrar.release(record.metadata.cri_name)
            log.warning("sandbox %s: set-up failed, everything undone: %s", sandbox_id, err)
            return
        message = f"set-up failed ({err}); left behind: {'; '.join(failures)}"
        log.error("sandbox %s: %s", sandbox_id, message)
        await asyncio.to_thread(
            self.store.update_status,
            sandbox_id,
            lambda old: old.moved_to(SandboxState.NOT_READY, message=message),
        )

    async def check_network(self, sandbox_id: str) -> str:
        """CNI CHECK of a ready sandbox's attachment: "ok", "not supported by the network",
        or the plugin's error. Run for verbose PodSandboxStatus only: kubelet's frequent
        non-verbose polls are answered from memory (user-asks #17)."""
        async with self.locks.hold(sandbox_id):
            record = self.store.get(sandbox_id)
            if record is None or record.status.state is not SandboxState.READY:
                return "sandbox is not ready"
            attachment = record.status.attachment
            if attachment is None:
                return "no network attachment (host network)"
            netns = record.status.namespace_paths.get("net", "")
            try:
                checked = await self.cni.check(attachment, netns)
            except CniError as err:
                return f"failed: {err}"
            return "ok" if checked else "not supported by the network"

    # -- StopPodSandbox ----------------------------------------------------------------------

    async def stop(self, sandbox_id: str) -> None:
        """Stop a sandbox; unknown ids and repeated stops succeed (CRI idempotence)."""
        full = self.resolve_id(sandbox_id)
        if full is None:
            return
        async with self.locks.hold(full):
            record = self.store.get(full)
            if record is None:
                return
            await self._stop_locked(record)

    async def _stop_locked(self, record: SandboxRecord) -> SandboxRecord:
        sandbox_id, meta, status = record.record_id, record.metadata, record.status
        await self.containers.stop_pod_containers(sandbox_id)
        first_error: DomainError | None = None
        if status.state is not SandboxState.NOT_READY or (status.pause and status.pause.is_alive()):
            await self._kill_pause(record)
        torn_down = status.network_torn_down or meta.namespaces.host_network
        if not torn_down:
            try:
                await self._teardown_network(record)
                torn_down = True
            except CniError as err:
                first_error = err
        try:
            await asyncio.to_thread(files.unmount_shm, files.PodFiles.under(meta.run_dir).shm)
        except PodError as err:
            first_error = first_error or err
        message = "" if status.state is SandboxState.READY else status.message
        new_status = status.moved_to(
            SandboxState.NOT_READY,
            network_torn_down=torn_down,
            stopped_at_ns=status.stopped_at_ns or time.time_ns(),
            message=message,
        )
        if new_status != status:  # a repeated Stop writes nothing
            await asyncio.to_thread(self.store.update_status, sandbox_id, lambda _: new_status)
            if status.state is not SandboxState.NOT_READY:
                self._emit(sandbox_id, "stopped")
        if first_error is not None:
            raise first_error
        log.info("sandbox %s stopped", sandbox_id)
        return dataclasses.replace(record, status=new_status)

    async def _kill_pause(self, record: SandboxRecord) -> None:
        """Kill the pause through its runtime; if the handler is gone from the config, kill
        the recorded process itself so the pod can still be stopped."""
        pause = record.status.pause
        try:
            runtime: RuntimeClient | None = self.runtime_client(record.metadata.runtime_handler)
        except OciRuntimeMissingError as err:
            log.warning("sandbox %s: %s; killing the pause directly", record.record_id, err)
            runtime = None
        if runtime is not None:
            await self.runner.stop(runtime, record.record_id, pause, self.stop_timeout_s)
        elif pause is not None and pause.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pause.pid, signal.SIGKILL)
            if not await proc.wait_exit(pause.pid, pause.start_time, self.stop_timeout_s):
                raise PodError(f"pause of {record.record_id} (pid {pause.pid}) does not exit")

    async def _teardown_network(self, record: SandboxRecord) -> None:
        """CNI DEL for the sandbox, with its pinned netns or CNI_NETNS="" if the pin is
        gone (a DEL that fails only because the netns is gone counts as done, as CRI-O)."""
        sandbox_id = record.record_id
        netns = record.status.namespace_paths.get("net") or pins.pin_path(
            self.ns_dir, "net", sandbox_id
        )
        if not pins.is_pinned(netns):
            netns = ""
        try:
            await self.cni.teardown(sandbox_id, record.status.attachment, netns)
        except CniError as err:
            if netns:
                raise
            log.warning("sandbox %s: cni DEL without a netns failed, ignored: %s", sandbox_id, err)

    # -- RemovePodSandbox --------------------------------------------------------------------

    async def remove(self, sandbox_id: str) -> None:
        """Remove a sandbox, stopping it first if needed; unknown ids succeed."""
        full = self.resolve_id(sandbox_id)
        if full is None:
            return
        async with self.locks.hold(full):
            record = self.store.get(full)
            if record is None:
                return
            await self.containers.remove_pod_containers(full)
            record = await self._stop_locked(record)
            await self._delete_pause(record, None)
            await asyncio.to_thread(self._unpin_all, full)
            await asyncio.to_thread(_rmtree, record.metadata.run_dir)
            await asyncio.to_thread(self.store.delete, full)
            self.registrar.release_id(full)
            self._undelivered.pop(record.metadata.cri_name, None)
            log.info("sandbox %s removed", full)
        self._emit(full, "deleted", record)

    async def _delete_pause(self, record: SandboxRecord, pause: PauseProcess | None) -> None:
        """Delete the pause (`delete --force` kills it if it runs), then any cgroup leaf
        the runtime left behind."""
        try:
            runtime = self.runtime_client(record.metadata.runtime_handler)
            await self.runner.delete(runtime, record.record_id)
        except OciRuntimeError as err:
            # A runtime that cannot delete what it never created must not make the pod
            # unremovable: when no process is left in the pause's cgroup and the recorded
            # pause is gone, there is nothing the runtime could still release but its
            # own state files.
            alive = record.status.pause is not None and record.status.pause.is_alive()
            still_there = await asyncio.to_thread(cgroup.processes, record.metadata.cgroups_path)
            if alive or still_there:
                raise
            log.warning(
                "sandbox %s: %s; nothing of the pause is left, going on", record.record_id, err
            )
        if pause is not None and not await proc.wait_exit(
            pause.pid, pause.start_time, self.stop_timeout_s
        ):
            raise PodError(f"pause of {record.record_id} (pid {pause.pid}) does not exit")
        left = await asyncio.to_thread(cgroup.remove_leaf, record.metadata.cgroups_path)
        if left:
            raise PodError(f"sandbox {record.record_id}: cgroup still in use: {', '.join(left)}")

    def _unpin_all(self, sandbox_id: str) -> None:
        pins.unpin_all(pins.pin_path(self.ns_dir, kind, sandbox_id) for kind in pins.KINDS)

    # -- pause exit watch --------------------------------------------------------------------

    def _watch(self, sandbox_id: str, pause: PauseProcess) -> None:
        old = self._watchers.pop(sandbox_id, None)
        if old is not None:
            old.cancel()
        self._watchers[sandbox_id] = asyncio.create_task(
            self._watch_pause(sandbox_id, pause), name=f"pause watch {sandbox_id[:12]}"
        )

    async def _watch_pause(self, sandbox_id: str, pause: PauseProcess) -> None:
        """When the pause exits: mark a READY sandbox NOT_READY (kubelet then recreates
        it), and reap its conmon, which exits right after it."""
        try:
            await proc.wait_exit(pause.pid, pause.start_time, None)
            async with self.locks.hold(sandbox_id):
                record = self.store.get(sandbox_id)
                if (
                    record is not None
                    and record.status.state is SandboxState.READY
                    and record.status.pause == pause
                ):
                    message = f"pause process (pid {pause.pid}) exited"
                    log.warning("sandbox %s: %s", sandbox_id, message)
                    await asyncio.to_thread(
                        self.store.update_status, sandbox_id, _not_ready_because(message)
                    )
                    self._emit(sandbox_id, "stopped")
            if pause.conmon_pid > 0 and not await proc.wait_and_reap(pause.conmon_pid, 30.0):
                log.warning("conmon %d of sandbox %s did not exit", pause.conmon_pid, sandbox_id)
        finally:
            if self._watchers.get(sandbox_id) is asyncio.current_task():
                del self._watchers[sandbox_id]

    async def close(self) -> None:
        """Stop watching pause processes (daemon shutdown; pods keep running)."""
        watchers = list(self._watchers.values())
        self._watchers.clear()
        for task in watchers:
            task.cancel()
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- recovery ----------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a (re)start: reserve names, check each sandbox against the kernel, sweep
        orphans, release leaked CNI attachments. Runs before crib serves requests."""
        for record in self.store.list():
            sandbox_id, meta, status = record.record_id, record.metadata, record.status
            self.registrar.reserve(meta.cri_name, sandbox_id)
            if status.state is SandboxState.READY:
                reason = _not_alive_reason(status)
                if reason is None:
                    assert status.pause is not None
                    self._watch(sandbox_id, status.pause)
                    continue
                await asyncio.to_thread(
                    self.store.update_status, sandbox_id, _not_ready_because(reason)
                )
                log.warning("sandbox %s is not ready after restart: %s", sandbox_id, reason)
            elif status.state is SandboxState.CREATING:
                message = "crib stopped while the sandbox was being created"
                await asyncio.to_thread(
                    self.store.update_status, sandbox_id, _not_ready_because(message)
                )
                log.warning("sandbox %s: %s", sandbox_id, message)
        live = {r.record_id for r in self.store.list()}
        await asyncio.to_thread(self._sweep_orphans, live)
        released = await self.cni.gc(live)
        if released:
            log.info("released %d leaked cni attachment(s)", len(released))

    def _sweep_orphans(self, live: set[str]) -> None:
        """Pins and run dirs of sandboxes without a record (crash during Remove)."""
        for kind in pins.KINDS:
            kind_dir = os.path.join(self.ns_dir, kind)
            for name in _listdir(kind_dir):
                if name not in live:
                    log.warning("removing orphan %s pin %s", kind, name)
                    with contextlib.suppress(PodError):
                        pins.unpin(os.path.join(kind_dir, name))
        for name in _listdir(self.pods_dir):
            if name not in live:
                run_dir = os.path.join(self.pods_dir, name)
                log.warning("removing orphan pod run dir %s", run_dir)
                with contextlib.suppress(PodError):
                    files.unmount_shm(files.PodFiles.under(run_dir).shm)
                _rmtree(run_dir)


def _not_ready_because(message: str) -> Callable[[SandboxStatus], SandboxStatus]:
    def update(old: SandboxStatus) -> SandboxStatus:
        return old.moved_to(SandboxState.NOT_READY, message=message)

    return update


def _not_alive_reason(status: SandboxStatus) -> str | None:
    """Why a READY sandbox cannot be trusted after a restart, or None if it can."""
    pause = status.pause
    if pause is None or not pause.is_alive():
        return "pause process is gone (found at restart)"
    for kind, path in status.namespace_paths.items():
        if not pins.is_pinned(path, pause.pid, kind):
            return f"{kind} namespace pin {path} is missing (found at restart)"
    return None


def _write_identity_files(meta: SandboxMetadata, pod_files: files.PodFiles) -> None:
    files.write_file(pod_files.hostname, f"{meta.hostname}\n".encode())
    files.write_file(pod_files.resolv_conf, files.resolv_conf(meta.dns))


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
