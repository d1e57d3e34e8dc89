"""Container lifecycle: Create, Start, Stop, Remove, Update, ReopenLog, ExecSync, exits,
recovery, and the pod hook (stop/remove every container of a sandbox).

CreateContainer (record first, then acquire; driven as CRI-O drives conmon):

    checks ─► reserve k8s_<name>_<pod>_<ns>_<uid>_<attempt> ─► record CREATING ─► rootfs
    snapshot ─► overlay mounted on <bundle>/rootfs ─► image volumes ─► OCI spec (cri.specgen)
    ─► working dir and volume dirs in the rootfs, bind sources and log dir on the host ─►
    config.json ─► conmon + `runtime create` (the init waits; conmon holds stdio, writes
    the CRI log, owns attach socket and ctl fifo) ─► record CREATED, exit watch starts

Every acquisition has its reverse in `_teardown`, whose steps are all idempotent: a failed
create runs it and, if every step succeeded, deletes the record and frees the name; if one
failed the record becomes UNKNOWN naming what is left, and Stop/Remove finish the job.
As for pods, the creation runs in its own task, so kubelet's retry after its deadline gets
the container made for the cancelled call (CRI-O's resourcestore, user-asks #4).

StartContainer runs `runtime start` (conmon is not involved: docs/conmon.md 2).

Exits: a watch per container waits on a pidfd of the init (pidfd_open(2): readable when it
exits, whoever its parent). conmon then writes the exit status; crib reads it with the
finish time and OOM flag (cri.containers.exits), marks the container EXITED, kills what
is left in its cgroup (exec'd processes in a shared pid namespace) and unmounts its rootfs.
The same code runs from StopContainer and from recovery, so an exit is handled once.

StopContainer(timeout): stop signal ─► wait `timeout` ─► SIGKILL ─► wait; signals go
through `runtime kill`, or straight to the recorded init (pid + start time) if the runtime
or conmon lost it, so Stop returns once the process is dead even when conmon died
(user-asks #5). Exec'd processes are killed with the container (#6).

RemoveContainer: Stop with no grace if needed ─► `_teardown` ─► record ─► name.

Restart recovery (crib restarted, conmon kept going): CREATED/RUNNING containers whose init
still runs stay so and are watched again; those that exited meanwhile get their exit from
conmon's files; CREATING ones are torn down. Nothing is started twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from common import atomicfile
from common.errors import (
    DomainError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
)
from cri.api import api_pb2 as pb
from cri.config import Config
from cri.containers import exits
from cri.containers import resources as res
from cri.containers.errors import (
    ContainerError,
    ContainerNotFoundError,
    ContainerStateError,
    ContainerStopError,
    ContainerTeardownError,
)
from cri.containers.records import (
    LIVE_STATES,
    RECORD_KIND,
    RECORD_VERSION,
    ContainerMetadata,
    ContainerState,
    ContainerStatus,
    Process,
)
from cri.containers.rootfs import ensure_host_dir, mkdir_in_root
from cri.containers.validate import ContainerPlan, container_name
from cri.pods.records import SandboxMetadata, SandboxState, SandboxStatus
from cri.specgen import (
    HostFacts,
    PodFiles,
    SpecInputs,
    generate,
    read_user_database,
    resolve_image_sub_path,
)
from cri.specgen.process import log_path_of
from cri.store import KeyedLock, NameReservedError, Record, RecordStore, Registrar
from image.service import ImageService
from image.store import ImageRecord
from sandbox.container import rootfs as host_rootfs
from sandbox.container.errors import ContainerHostError
from sandbox.monitor import proc
from sandbox.monitor.conmon import ATTACH_SOCKET, CTL_FIFO, Conmon, CreateSpec, ExecSyncResult
from sandbox.oci.client import RuntimeClient
from sandbox.oci.errors import OciContainerNotFoundError, OciRuntimeError, OciRuntimeMissingError
from sandbox.pod import cgroup
from sandbox.pod import files as pod_files

log = logging.getLogger("crib.containers")

ContainerStore = RecordStore[ContainerMetadata, ContainerStatus]
ContainerRecord = Record[ContainerMetadata, ContainerStatus]
SandboxRecord = Record[SandboxMetadata, SandboxStatus]
# A listener gets (container id, event): "created", "started", "stopped", "deleted".
Listener = Callable[[str, str], None]

ROOTFS_DIR = "rootfs"
VOLUMES_DIR = "volumes"
EXEC_DIR = "exec"
CONFIG_FILE = "config.json"
# How long SIGKILL may take before Stop reports the process as stuck (D state, NFS).
KILL_WAIT_S = 30.0
# How long a dead init's conmon gets to write the exit file (it drains output first).
EXIT_FILE_WAIT_S = 30.0
# After conmon is gone: one more look for the exit file, then the status is unknown.
EXIT_FILE_GRACE_S = 1.0


@dataclasses.dataclass(frozen=True)
class MonitorPaths:
    """A container's conmon endpoints (docs/conmon.md 6).

    `attach_socket`: SOCK_SEQPACKET; each packet from conmon is one byte (2 stdout, 3 stderr)
    plus up to 8192 bytes of output; bytes sent to it go to the container's stdin (when it
    was created with stdin) and shutdown(SHUT_WR) closes stdin unless stdin_once is false.
    `ctl_fifo`: lines `1 HEIGHT WIDTH` resize the terminal, `2 0 0` reopens the log.
    """

    attach_socket: str
    ctl_fifo: str
    tty: bool
    stdin: bool
    stdin_once: bool


def new_container_store(root: str) -> ContainerStore:
    """The store of container records under `<root>/containers`."""
    return RecordStore(
        os.path.join(root, "containers"),
        RECORD_KIND,
        RECORD_VERSION,
        ContainerMetadata,
        ContainerStatus,
    )


def _sandbox_config(meta: SandboxMetadata) -> pb.PodSandboxConfig:
    return json_format.ParseDict(meta.config, pb.PodSandboxConfig(), ignore_unknown_fields=True)


class ContainerManager:
    """Creates, starts, stops, removes, updates and recovers containers."""

    def __init__(
        self,
        config: Config,
        store: ContainerStore,
        registrar: Registrar,
        locks: KeyedLock,
        sandboxes: RecordStore[SandboxMetadata, SandboxStatus],
        resolve_sandbox: Callable[[str], str | None],
        images: ImageService,
        conmon: Conmon,
        runtime_client: Callable[[str], RuntimeClient],
        host_facts: Callable[[str], HostFacts],
    ) -> None:
        self.config = config
        self.store = store
        self.registrar = registrar
        self.locks = locks
        self.sandboxes = sandboxes
        self.resolve_sandbox = resolve_sandbox
        self.images = images
        self.conmon = conmon
        self.runtime_client = runtime_client
        self.host_facts = host_facts
        self.bundles_dir = os.path.join(config.state, "containers")
        self.persist_root = os.path.join(config.root, "container-exits")
        self.create_timeout_s = 240.0
        self.listeners: list[Listener] = []
        # resourcestore: creations in flight (by name), and finished ones nobody received
        self._creating: dict[str, asyncio.Task[str]] = {}
        self._creating_ids: dict[str, asyncio.Task[str]] = {}
        self._creating_in_sandbox: dict[str, set[asyncio.Task[str]]] = {}
        self._undelivered: dict[str, str] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._process_specs: dict[str, dict[str, Any]] = {}

    # -- lookups -----------------------------------------------------------------------------

    def resolve_id(self, container_id: str) -> str | None:
        """The full id for `container_id` or a unique prefix of one; None if none matches."""
        if not container_id:
            return None
        if self.store.get(container_id) is not None:
            return container_id
        matches = [r.record_id for r in self.store.list() if r.record_id.startswith(container_id)]
        if len(matches) > 1:
            raise InvalidArgumentError(
                f"container_id {container_id!r} is ambiguous: {len(matches)} containers match"
            )
        return matches[0] if matches else None

    def require(self, container_id: str) -> ContainerRecord:
        """The record of `container_id` (or a unique prefix); NOT_FOUND naming it otherwise."""
        full = self.resolve_id(container_id)
        record = self.store.get(full) if full is not None else None
        if record is None:
            raise ContainerNotFoundError(f"container {container_id!r} not found")
        return record

    def of_sandbox(self, sandbox_id: str) -> list[ContainerRecord]:
        """The containers of a sandbox."""
        return [r for r in self.store.list() if r.metadata.sandbox_id == sandbox_id]

    def _emit(self, container_id: str, event: str) -> None:
        for listener in self.listeners:
            try:
                listener(container_id, event)
            except Exception:
                log.exception("container event listener failed")

    # -- CreateContainer ---------------------------------------------------------------------

    async def create(self, plan: ContainerPlan) -> str:
        """Create a container for a checked request; returns its id (see module doc)."""
        sandbox_id = self.resolve_sandbox(plan.sandbox_ref)
        sandbox = self.sandboxes.get(sandbox_id) if sandbox_id else None
        if sandbox is None:
            raise NotFoundError(f"pod sandbox {plan.sandbox_ref!r} not found")
        if sandbox.status.state is not SandboxState.READY:
            raise FailedPreconditionError(
                f"pod sandbox {sandbox.record_id} is not ready"
                f" ({sandbox.status.state.value}); cannot create containers in it"
            )
        image = self.images.require(plan.image)
        # Image volumes: NOT_FOUND now rather than after half a creation, and their image
        # ids recorded as Mount.image.image_ref (ContainerStatus mounts, KEP 5365).
        for mount in plan.config.mounts:
            if mount.HasField("image") and mount.image.image:
                mount.image.image_ref = self.images.require(mount.image.image).image_id
        meta = sandbox.metadata
        name = container_name(plan.config.metadata, meta.name, meta.namespace, meta.uid)
        holder = self.registrar.holder(name)
        if holder is not None:
            in_flight = self._creating.get(name)
            if in_flight is not None:
                log.info("CreateContainer %s: joining the creation in flight (%s)", name, holder)
                container_id = await asyncio.shield(in_flight)
                self._undelivered.pop(name, None)
                return container_id
            if self._undelivered.get(name) == holder:
                del self._undelivered[name]
                log.info(
                    "CreateContainer %s: handing over %s made for a cancelled call", name, holder
                )
                return holder
            raise NameReservedError(name, holder)
        container_id = secrets.token_hex(32)
        metadata = self._metadata(container_id, name, plan, sandbox, image)
        self.registrar.reserve(name, container_id)
        # No await between the readiness check and registering the task: StopPodSandbox
        # (stop_pod_containers) waits for every creation it can see.
        task = asyncio.create_task(
            self._create(metadata, container_id, plan, sandbox), name=f"CreateContainer {name}"
        )
        self._creating[name] = task
        self._creating_ids[container_id] = task
        self._creating_in_sandbox.setdefault(sandbox.record_id, set()).add(task)

        def finished(done: asyncio.Task[str]) -> None:
            self._creating.pop(name, None)
            self._creating_ids.pop(container_id, None)
            tasks = self._creating_in_sandbox.get(sandbox.record_id)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._creating_in_sandbox[sandbox.record_id]
            if not done.cancelled() and done.exception() is None:
                self._undelivered[name] = done.result()

        task.add_done_callback(finished)
        container_id = await asyncio.shield(task)
        self._undelivered.pop(name, None)
        return container_id

    def _metadata(
        self,
        container_id: str,
        name: str,
        plan: ContainerPlan,
        sandbox: SandboxRecord,
        image: ImageRecord,
    ) -> ContainerMetadata:
        """The record's metadata (raises INVALID_ARGUMENT for a log path leaving its dir)."""
        config = plan.config
        smeta = sandbox.metadata
        # The log path by the one rule specgen applies (it needs only the two configs).
        probe = SpecInputs(
            container_id=container_id,
            sandbox_id=sandbox.record_id,
            config=config,
            sandbox_config=_sandbox_config(smeta),
            image_config={},
            image_name="",
            rootfs_path="",
            namespace_paths={},
            pod_files=PodFiles(),
            cgroup_parent="",
        )
        return ContainerMetadata(
            name=plan.name,
            attempt=plan.attempt,
            cri_name=name,
            sandbox_id=sandbox.record_id,
            created_at_ns=time.time_ns(),
            runtime_handler=smeta.runtime_handler,
            image_id=image.image_id,
            image_name=image_name(image),
            labels=dict(config.labels),
            annotations=dict(config.annotations),
            log_path=log_path_of(probe),
            bundle_dir=os.path.join(self.bundles_dir, container_id),
            persist_dir=os.path.join(self.persist_root, container_id),
            cgroups_path=cgroup.leaf_path(smeta.cgroup_parent, container_id),
            tty=config.tty,
            stdin=config.stdin,
            stdin_once=config.stdin_once,
            config=json_format.MessageToDict(config, preserving_proto_field_name=True),
        )

    async def _create(
        self,
        metadata: ContainerMetadata,
        container_id: str,
        plan: ContainerPlan,
        sandbox: SandboxRecord,
    ) -> str:
        name = metadata.cri_name
        sandbox_config = _sandbox_config(sandbox.metadata)
        async with self.locks.hold(container_id):
            try:
                record = await asyncio.to_thread(
                    self.store.create,
                    container_id,
                    metadata,
                    ContainerStatus(ContainerState.CREATING),
                )
            except BaseException:
                self.registrar.release(name)
                raise
            try:
                status = await self._acquire(record, plan, sandbox, sandbox_config)
                await asyncio.to_thread(self.store.update_status, container_id, lambda _: status)
            except BaseException as err:
                await self._undo_failed_create(record, err)
                raise
        assert status.init is not None
        self._watch(container_id, status.init)
        log.info("container %s (%s) created: pid %d", container_id, name, status.init.pid)
        self._emit(container_id, "created")
        return container_id

    async def _acquire(
        self,
        record: ContainerRecord,
        plan: ContainerPlan,
        sandbox: SandboxRecord,
        sandbox_config: pb.PodSandboxConfig,
    ) -> ContainerStatus:
        """Make every resource of the container (reversed by `_teardown`)."""
        container_id, meta = record.record_id, record.metadata
        config = plan.config
        smeta, sstatus = sandbox.metadata, sandbox.status
        runtime = self.runtime_client(meta.runtime_handler)
        host = self.host_facts(meta.runtime_handler)

        # The writable layer over the image, mounted on <bundle>/rootfs.
        overlay = await asyncio.to_thread(self.images.prepare_rootfs, container_id, meta.image_id)
        await asyncio.to_thread(os.makedirs, meta.bundle_dir, 0o700, True)
        rootfs_path = os.path.join(meta.bundle_dir, ROOTFS_DIR)
        data, cwd = overlay.mount_data()
        await host_rootfs.mount_overlay(rootfs_path, data, cwd)

        # Mount.image volumes: a read-only view of each image (its own snapshot, so its
        # layers stay while the container uses them).
        image_volumes: dict[str, str] = {}
        for index, mount in enumerate(config.mounts):
            if not (mount.HasField("image") and mount.image.image):
                continue
            volume_image = self.images.require(mount.image.image_ref or mount.image.image)
            view = await asyncio.to_thread(
                self.images.prepare_rootfs,
                _volume_snapshot(container_id, index),
                volume_image.image_id,
            )
            target = os.path.join(meta.bundle_dir, VOLUMES_DIR, str(index))
            view_data, view_cwd = view.mount_data()
            await host_rootfs.mount_overlay(target, view_data, view_cwd, readonly=True)
            destination = os.path.normpath(mount.container_path)
            image_volumes[destination] = await asyncio.to_thread(
                resolve_image_sub_path, target, mount.image_sub_path, mount.image.image
            )

        user_db = await asyncio.to_thread(read_user_database, rootfs_path)
        image_doc = await asyncio.to_thread(
            self.images.config_of, self.images.require(meta.image_id)
        )
        image_config = image_doc.get("config") or {}
        run_files = pod_files.PodFiles.under(smeta.run_dir)
        inputs = SpecInputs(
            container_id=container_id,
            sandbox_id=sandbox.record_id,
            config=config,
            sandbox_config=sandbox_config,
            image_config=image_config if isinstance(image_config, dict) else {},
            image_name=meta.image_name,
            rootfs_path=rootfs_path,
            namespace_paths=dict(sstatus.namespace_paths),
            pod_files=PodFiles(
                hostname_path=run_files.hostname,
                hosts_path=run_files.hosts,
                resolv_conf_path=run_files.resolv_conf,
                shm_path=pod_files.HOST_SHM if smeta.namespaces.host_ipc else run_files.shm,
            ),
            cgroup_parent=cgroup.validate_parent(smeta.cgroup_parent),
            cgroup_driver=self.config.cgroup_driver,
            target_pid=self._target_pid(config, sandbox.record_id),
            image_volumes=image_volumes,
            user_db=user_db,
            host=host,
        )
        generated = await asyncio.to_thread(generate, inputs)
        spec = generated.spec
        if spec["linux"].get("cgroupsPath") != meta.cgroups_path:
            raise InternalError(
                f"container {container_id}: spec cgroupsPath {spec['linux'].get('cgroupsPath')!r}"
                f" differs from the recorded {meta.cgroups_path!r}"
            )

        def prepare_dirs() -> None:
            for wanted in generated.dirs_to_create:
                mkdir_in_root(rootfs_path, wanted)
            for mount in config.mounts:
                if mount.host_path and not (mount.HasField("image") and mount.image.image):
                    ensure_host_dir(mount.host_path)
            if meta.log_path:
                ensure_host_dir(os.path.dirname(meta.log_path))
            atomicfile.write_json(os.path.join(meta.bundle_dir, CONFIG_FILE), spec)

        await asyncio.to_thread(prepare_dirs)
        self._process_specs[container_id] = spec["process"]

        created = await self.conmon.create(
            CreateSpec(
                container_id=container_id,
                name=meta.cri_name,
                bundle_dir=meta.bundle_dir,
                persist_dir=meta.persist_dir,
                log_path=meta.log_path,
                runtime_path=runtime.path,
                runtime_root=runtime.root,
                terminal=meta.tty,
                stdin=meta.stdin,
                stdin_once=meta.stdin_once,
                timeout_s=self.create_timeout_s,
            )
        )
        init_start = proc.start_time(created.container_pid)
        conmon_start = proc.start_time(created.conmon_pid)
        if init_start is None:
            raise ContainerError(
                f"container {container_id}: init pid {created.container_pid} exited during create"
            )
        user = generated.user
        return ContainerStatus(
            state=ContainerState.CREATED,
            init=Process(created.container_pid, init_start),
            conmon=Process(created.conmon_pid, conmon_start) if conmon_start is not None else None,
            uid=user.uid,
            gid=user.gid,
            supplemental_groups=user.supplemental_groups,
            stop_signal=generated.stop_signal,
            seccomp_profile=generated.seccomp_profile,
            resources=res.to_json(config.linux.resources),
        )

    def _target_pid(self, config: pb.ContainerConfig, sandbox_id: str) -> int | None:
        """The init pid of a TARGET pid-namespace container (same pod, created or running)."""
        options = config.linux.security_context.namespace_options
        if options.pid != pb.NamespaceMode.TARGET:
            return None
        target_id = self.resolve_id(options.target_id)
        target = self.store.get(target_id) if target_id else None
        if target is None or target.metadata.sandbox_id != sandbox_id:
            raise NotFoundError(
                f"namespace_options.target_id: container {options.target_id!r} not found in"
                f" pod sandbox {sandbox_id}"
            )
        init = target.status.init
        if target.status.state not in LIVE_STATES or init is None or not init.is_alive():
            raise FailedPreconditionError(
                f"namespace_options.target_id: container {target.record_id} is not running"
            )
        return init.pid

    async def _undo_failed_create(self, record: ContainerRecord, err: BaseException) -> None:
        container_id = record.record_id
        failures = await self._teardown(record)
        if not failures:
            await asyncio.to_thread(self.store.delete, container_id)
            self.registrar.release(record.metadata.cri_name)
            log.warning("container %s: create failed, everything undone: %s", container_id, err)
            return
        message = f"create failed ({err}); left behind: {'; '.join(failures)}"
        log.error("container %s: %s", container_id, message)
        await asyncio.to_thread(
            self.store.update_status,
            container_id,
            lambda old: old.moved_to(ContainerState.UNKNOWN, message=message),
        )

    # -- StartContainer ----------------------------------------------------------------------

    async def start(self, container_id: str) -> None:
        """Start a created container (`runtime start`); FAILED_PRECONDITION in any other
        state. A failed start kills the init and leaves the container EXITED with reason
        StartError and the runtime's message (as containerd), then raises."""
        record = self.require(container_id)
        container_id = record.record_id
        async with self.locks.hold(container_id):
            record = self.require(container_id)
            status = record.status
            if status.state is not ContainerState.CREATED:
                raise ContainerStateError(
                    f"container {container_id} is {status.state.value}, not created; only a"
                    " created container can be started"
                )
            sandbox = self.sandboxes.get(record.metadata.sandbox_id)
            if sandbox is None or sandbox.status.state is not SandboxState.READY:
                raise ContainerStateError(
                    f"pod sandbox {record.metadata.sandbox_id} of container {container_id} is"
                    " not ready"
                )
            # Taken before `runtime start`: a process that exits at once must not look as if
            # it finished before it started (the exit file's ctime is the finish time).
            started_at_ns = time.time_ns()
            try:
                runtime = self.runtime_client(record.metadata.runtime_handler)
                await runtime.start(container_id)
            except DomainError as err:
                await self._fail_start(record, err)
                raise
            new_status = status.moved_to(ContainerState.RUNNING, started_at_ns=started_at_ns)
            await asyncio.to_thread(self.store.update_status, container_id, lambda _: new_status)
        log.info("container %s started", container_id)
        self._emit(container_id, "started")

    async def _fail_start(self, record: ContainerRecord, err: DomainError) -> None:
        """Called under the container's lock: kill the init, record the failure."""
        with contextlib.suppress(DomainError):
            await self._terminate(record, 0.0)
        exit_info = await self._collect_exit(record)
        message = str(err)
        new_status = record.status.moved_to(
            ContainerState.EXITED,
            finished_at_ns=exit_info.finished_at_ns,
            exit_code=exit_info.exit_code if exit_info.exit_code else exits.UNKNOWN_EXIT_CODE,
            reason=exits.REASON_START_ERROR,
            message=message,
        )
        await asyncio.to_thread(self.store.update_status, record.record_id, lambda _: new_status)
        await self._post_stop(record)
        log.warning("container %s: start failed: %s", record.record_id, message)
        self._emit(record.record_id, "stopped")

    # -- exits -------------------------------------------------------------------------------

    def _watch(self, container_id: str, init: Process) -> None:
        old = self._watchers.pop(container_id, None)
        if old is not None:
            old.cancel()
        self._watchers[container_id] = asyncio.create_task(
            self._watch_init(container_id, init), name=f"exit watch {container_id[:12]}"
        )

    async def _watch_init(self, container_id: str, init: Process) -> None:
        try:
            await proc.wait_exit(init.pid, init.start_time, None)
            await self._handle_exit(container_id)
        except Exception:
            log.exception("container %s: handling its exit failed", container_id)
        finally:
            if self._watchers.get(container_id) is asyncio.current_task():
                del self._watchers[container_id]

    async def _handle_exit(self, container_id: str) -> None:
        """Record the exit of a container whose init is dead (idempotent)."""
        async with self.locks.hold(container_id):
            record = self.store.get(container_id)
            if record is None or record.status.state not in LIVE_STATES:
                return
            init = record.status.init
            if init is not None and init.is_alive():
                return  # not dead after all (a spurious wake-up)
            exit_info = await self._collect_exit(record)
            new_status = record.status.moved_to(
                ContainerState.EXITED,
                finished_at_ns=max(exit_info.finished_at_ns, record.status.started_at_ns),
                exit_code=exit_info.exit_code,
                reason=exit_info.reason,
                message=exit_info.message,
            )
            await asyncio.to_thread(self.store.update_status, container_id, lambda _: new_status)
            log.info(
                "container %s exited: status %d (%s)",
                container_id,
                exit_info.exit_code,
                exit_info.reason,
            )
            await self._post_stop(record)
        self._emit(container_id, "stopped")
        conmon = record.status.conmon
        if conmon is not None:
            # conmon is crib's child (adopted as subreaper) unless crib restarted since.
            await proc.wait_and_reap(conmon.pid, 5.0)

    async def _collect_exit(self, record: ContainerRecord) -> exits.Exit:
        """The exit of a dead init: conmon's files, waiting while conmon drains output."""
        meta = record.metadata
        exit_file = self.conmon.exit_file(record.record_id)
        conmon = record.status.conmon
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EXIT_FILE_WAIT_S
        grace_until: float | None = None
        while True:
            found = await asyncio.to_thread(
                exits.read_exit, meta.persist_dir, exit_file, meta.bundle_dir
            )
            if found is not None:
                return found
            now = loop.time()
            conmon_alive = conmon is not None and conmon.is_alive()
            if not conmon_alive and grace_until is None:
                grace_until = now + EXIT_FILE_GRACE_S
            if now > deadline or (grace_until is not None and now > grace_until):
                break
            await asyncio.sleep(0.01)
        # conmon is gone without a word. If it died first, the init was re-parented to
        # crib (the subreaper) and its wait status is crib's to collect.
        init = record.status.init
        status = proc.reap_child(init.pid) if init is not None else None
        if status is not None:
            code = exits.exit_code_of_wait_status(status)
            oom = exits.oom_killed(meta.persist_dir, meta.bundle_dir)
            return exits.Exit(code, time.time_ns(), exits.reason_for(code, oom))
        return exits.Exit(
            exits.UNKNOWN_EXIT_CODE,
            time.time_ns(),
            exits.REASON_UNKNOWN,
            "the container's process is gone and its monitor recorded no exit status",
        )

    async def _post_stop(self, record: ContainerRecord) -> None:
        """After the init died (called under the container's lock): kill what is left in its
        cgroup, delete the runtime's state and the cgroup, unmount its filesystems, as
        containerd deletes a task on exit. Failures are logged; Remove repeats the steps."""
        failures = await self._release(record)
        if failures:
            for failure in failures:
                log.warning("container %s: %s (Remove retries)", record.record_id, failure)
            return
        current = self.store.get(record.record_id)
        if current is not None and not current.status.released:
            released = dataclasses.replace(current.status, released=True)
            await asyncio.to_thread(self.store.update_status, record.record_id, lambda _: released)

    async def _release(self, record: ContainerRecord) -> list[str]:
        """The kernel-side half of the teardown; "what: error" for each failed step."""
        failures: list[str] = []
        for what, action in (
            ("processes", self._kill_leftovers),
            ("runtime state", self._delete_runtime_state),
            ("conmon", self._stop_conmon),
            ("cgroup", self._remove_cgroup),
        ):
            try:
                await action(record)
            except Exception as err:  # noqa: BLE001 - every step gets its turn
                failures.append(f"{what}: {err}")
        failures.extend(await asyncio.to_thread(self._unmount_all, record))
        return failures

    async def _kill_leftovers(self, record: ContainerRecord) -> None:
        """SIGKILL every process still in the container's cgroup (exec'd processes when the
        container shares the pod's pid namespace: CRI-O kills exec PIDs the same way)."""
        pids = await asyncio.to_thread(cgroup.processes, record.metadata.cgroups_path)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    # -- StopContainer -----------------------------------------------------------------------

    async def stop(self, container_id: str, timeout_s: float) -> None:
        """Stop a container; unknown ids and stopped containers succeed (idempotent)."""
        full = self.resolve_id(container_id)
        if full is None:
            return
        await self._wait_creation(full)
        record = self.store.get(full)
        if record is None:
            return
        state = record.status.state
        if state in LIVE_STATES:
            grace = timeout_s if state is ContainerState.RUNNING else 0.0
            await self._terminate(record, grace)
            await self._handle_exit(full)
        elif state is ContainerState.UNKNOWN:
            await self._terminate(record, 0.0)
            await self._kill_leftovers(record)
            async with self.locks.hold(full):
                current = self.store.get(full)
                if current is not None and current.status.state is ContainerState.UNKNOWN:
                    new_status = current.status.moved_to(
                        ContainerState.EXITED,
                        finished_at_ns=time.time_ns(),
                        exit_code=exits.UNKNOWN_EXIT_CODE,
                        reason=exits.REASON_UNKNOWN,
                    )
                    await asyncio.to_thread(self.store.update_status, full, lambda _: new_status)
        else:
            # Already exited: exec'd processes may still run in a shared pid namespace.
            await self._kill_leftovers(record)

    async def _wait_creation(self, container_id: str) -> None:
        task = self._creating_ids.get(container_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def _terminate(self, record: ContainerRecord, grace_s: float) -> None:
        """Signal the init (stop signal, SIGKILL after `grace_s`) until it is dead."""
        init = record.status.init
        if init is None or not init.is_alive():
            return
        container_id = record.record_id
        if grace_s > 0:
            await self._signal(record, record.status.stop_signal)
            if await proc.wait_exit(init.pid, init.start_time, grace_s):
                return
            log.info(
                "container %s did not stop within %.0f s of signal %d; killing it",
                container_id,
                grace_s,
                record.status.stop_signal,
            )
        await self._signal(record, signal.SIGKILL)
        if not await proc.wait_exit(init.pid, init.start_time, KILL_WAIT_S):
            raise ContainerStopError(
                f"container {container_id} (pid {init.pid}) still runs {KILL_WAIT_S:g} s after"
                " SIGKILL"
            )

    async def _signal(self, record: ContainerRecord, signum: int) -> None:
        """`runtime kill ID SIGNUM`; when the runtime cannot (it lost the container, its
        handler left the config) signal the recorded init directly."""
        container_id = record.record_id
        try:
            runtime = self.runtime_client(record.metadata.runtime_handler)
            await runtime.kill(container_id, str(int(signum)))
            return
        except (OciContainerNotFoundError, OciRuntimeMissingError) as err:
            log.warning("container %s: %s; signalling its init directly", container_id, err)
        except OciRuntimeError as err:
            log.warning("container %s: %s; signalling its init directly", container_id, err)
        init = record.status.init
        if init is not None and init.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(init.pid, signum)

    # -- RemoveContainer ---------------------------------------------------------------------

    async def remove(self, container_id: str) -> None:
        """Remove a container, killing it first if it runs; unknown ids succeed."""
        full = self.resolve_id(container_id)
        if full is None:
            return
        await self._wait_creation(full)
        record = self.store.get(full)
        if record is None:
            return
        if record.status.state in LIVE_STATES or record.status.state is ContainerState.UNKNOWN:
            await self._terminate(record, 0.0)
            await self._handle_exit(full)
        async with self.locks.hold(full):
            record = self.store.get(full)
            if record is None:
                return
            failures = await self._teardown(record)
            if failures:
                raise ContainerTeardownError(
                    f"container {full}: could not release {'; '.join(failures)}"
                )
            await asyncio.to_thread(self.store.delete, full)
            self.registrar.release_id(full)
            self._undelivered.pop(record.metadata.cri_name, None)
            self._process_specs.pop(full, None)
            watcher = self._watchers.pop(full, None)
            if watcher is not None:
                watcher.cancel()
        log.info("container %s removed", full)
        self._emit(full, "deleted")

    async def _teardown(self, record: ContainerRecord) -> list[str]:
        """Release everything a container may hold, each step idempotent and each tried;
        returns "what: error" for every step that failed."""
        container_id, meta = record.record_id, record.metadata
        failures: list[str] = []

        async def step(what: str, action: Callable[[], Any]) -> None:
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as err:  # noqa: BLE001 - every step gets its turn
                failures.append(f"{what}: {err}")

        current = self.store.get(container_id)
        if current is None or not current.status.released:
            failures.extend(await self._release(record))
        # The file-side half: independent of each other, so done at once. A rootfs that is
        # still mounted keeps its snapshot and bundle (removing them would cut into it).
        steps = [step("exit files", lambda: asyncio.to_thread(self._remove_exit_files, record))]
        if not any(f.startswith("mount") for f in failures):
            steps.append(step("rootfs snapshot", lambda: self._remove_snapshots(container_id)))
            steps.append(step("bundle", lambda: asyncio.to_thread(_rmtree, meta.bundle_dir)))
        await asyncio.gather(*steps)
        return failures

    async def _delete_runtime_state(self, record: ContainerRecord) -> None:
        try:
            runtime = self.runtime_client(record.metadata.runtime_handler)
        except OciRuntimeMissingError as err:
            log.warning("container %s: %s; no runtime state to delete", record.record_id, err)
            return
        try:
            await runtime.delete(record.record_id, force=True)
        except OciRuntimeError as err:
            # A runtime that cannot delete what it never fully created must not make the
            # container unremovable once nothing of it runs.
            init = record.status.init
            alive = init is not None and init.is_alive()
            left = await asyncio.to_thread(cgroup.processes, record.metadata.cgroups_path)
            if alive or left:
                raise
            log.warning("container %s: %s; nothing of it runs, going on", record.record_id, err)

    async def _stop_conmon(self, record: ContainerRecord) -> None:
        conmon = record.status.conmon
        if conmon is None:
            return
        if conmon.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(conmon.pid, signal.SIGKILL)
        await proc.wait_and_reap(conmon.pid, 5.0)

    async def _remove_cgroup(self, record: ContainerRecord) -> None:
        left = await asyncio.to_thread(cgroup.remove_leaf, record.metadata.cgroups_path)
        if left:
            raise ContainerTeardownError(f"cgroup still in use: {', '.join(left)}")

    def _unmount_all(self, record: ContainerRecord) -> list[str]:
        """Unmount the image volumes and the rootfs (blocking; run in a thread)."""
        failures = []
        bundle = record.metadata.bundle_dir
        targets = sorted(glob.glob(os.path.join(bundle, VOLUMES_DIR, "*")))
        targets.append(os.path.join(bundle, ROOTFS_DIR))
        for target in targets:
            if not host_rootfs.is_mounted(target):
                continue
            try:
                host_rootfs.unmount_all(target)
            except ContainerHostError as err:
                failures.append(f"mount: {err}")
        return failures

    async def _remove_snapshots(self, container_id: str) -> None:
        prefix = container_id + "-v"
        for snapshot_id in self.images.snapshots.snapshots():
            if snapshot_id.startswith(prefix):
                await self.images.remove_rootfs(snapshot_id)
        await self.images.remove_rootfs(container_id)

    def _remove_exit_files(self, record: ContainerRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.conmon.exit_file(record.record_id))
        _rmtree(record.metadata.persist_dir)

    # -- UpdateContainerResources ------------------------------------------------------------

    async def update_resources(
        self, container_id: str, resources: pb.LinuxContainerResources
    ) -> None:
        """Apply new resources to a created or running container (`runtime update`)."""
        record = self.require(container_id)
        container_id = record.record_id
        async with self.locks.hold(container_id):
            record = self.require(container_id)
            if record.status.state not in LIVE_STATES:
                raise ContainerStateError(
                    f"container {container_id} is {record.status.state.value}; resources can"
                    " be updated only while it is created or running"
                )
            host = self.host_facts(record.metadata.runtime_handler)
            oci = res.oci_resources(resources, host, container_id)
            runtime = self.runtime_client(record.metadata.runtime_handler)
            if oci:
                await runtime.update(container_id, oci)
            new_status = dataclasses.replace(
                record.status, resources=res.merged(record.status.resources, resources)
            )
            await asyncio.to_thread(self.store.update_status, container_id, lambda _: new_status)
            await asyncio.to_thread(_update_spec_resources, record.metadata.bundle_dir, oci)
        log.info("container %s: resources updated", container_id)

    # -- ReopenContainerLog ------------------------------------------------------------------

    async def reopen_log(self, container_id: str) -> None:
        """Have conmon reopen the log; returns once the new file exists (user-asks #13)."""
        record = self.require(container_id)
        if record.status.state is not ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {record.record_id} is {record.status.state.value}; only a running"
                " container's log can be reopened"
            )
        if not record.metadata.log_path:
            return  # no log: nothing to reopen
        await self.conmon.reopen_log(record.metadata.bundle_dir, record.metadata.log_path)

    # -- ExecSync ----------------------------------------------------------------------------

    async def exec_sync(self, container_id: str, cmd: list[str], timeout_s: int) -> ExecSyncResult:
        """Run `cmd` in a running container and wait (see Conmon.exec_sync)."""
        if not cmd:
            raise InvalidArgumentError("cmd is required")
        if timeout_s < 0:
            raise InvalidArgumentError(f"timeout {timeout_s} is negative")
        record = self.require(container_id)
        container_id = record.record_id
        if record.status.state is not ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {container_id} is {record.status.state.value}, not running"
            )
        process = self._exec_process(record, cmd)
        runtime = self.runtime_client(record.metadata.runtime_handler)
        return await self.conmon.exec_sync(
            container_id,
            runtime.path,
            runtime.root,
            process,
            os.path.join(record.metadata.bundle_dir, EXEC_DIR),
            timeout_s,
        )

    def exec_process_spec(
        self, container_id: str, cmd: list[str], tty: bool = False
    ) -> dict[str, Any]:
        """The OCI process for an exec in a running container (streaming Exec): the
        container's own process (user, env, cwd, capabilities, ...) with `cmd` as args.
        Exec'd processes join the container's cgroup, so they die with the container."""
        record = self.require(container_id)
        if record.status.state is not ContainerState.RUNNING:
            raise ContainerStateError(
                f"container {record.record_id} is {record.status.state.value}, not running"
            )
        process = self._exec_process(record, cmd)
        process["terminal"] = tty
        return process

    def monitor_paths(self, container_id: str) -> MonitorPaths:
        """Where the container's conmon listens (streaming Attach, terminal resize)."""
        record = self.require(container_id)
        meta = record.metadata
        return MonitorPaths(
            attach_socket=os.path.join(self.conmon.socket_dir, record.record_id, ATTACH_SOCKET),
            ctl_fifo=os.path.join(meta.bundle_dir, CTL_FIFO),
            tty=meta.tty,
            stdin=meta.stdin,
            stdin_once=meta.stdin_once,
        )

    def _exec_process(self, record: ContainerRecord, cmd: list[str]) -> dict[str, Any]:
        """The container's OCI process with `cmd` as args and no terminal."""
        base = self._process_specs.get(record.record_id)
        if base is None:
            spec = _read_json(os.path.join(record.metadata.bundle_dir, CONFIG_FILE))
            base = spec.get("process") if spec else None
            if not isinstance(base, dict):
                raise ContainerStateError(
                    f"container {record.record_id}: its OCI spec is gone from"
                    f" {record.metadata.bundle_dir}"
                )
            self._process_specs[record.record_id] = base
        process = json.loads(json.dumps(base))
        process["args"] = list(cmd)
        process["terminal"] = False
        process.pop("consoleSize", None)
        return dict(process)

    # -- the pod hook (PodManager.containers) ------------------------------------------------

    async def stop_pod_containers(self, sandbox_id: str) -> None:
        """Kill every container of the sandbox (StopPodSandbox: kubelet already gave them
        their grace period; containerd stops them with no timeout too)."""
        await self._wait_sandbox_creations(sandbox_id)
        records = self.of_sandbox(sandbox_id)
        results = await asyncio.gather(
            *(self.stop(r.record_id, 0.0) for r in records), return_exceptions=True
        )
        _raise_first(results)

    async def remove_pod_containers(self, sandbox_id: str) -> None:
        """Remove every container of the sandbox (RemovePodSandbox)."""
        await self._wait_sandbox_creations(sandbox_id)
        records = self.of_sandbox(sandbox_id)
        results = await asyncio.gather(
            *(self.remove(r.record_id) for r in records), return_exceptions=True
        )
        _raise_first(results)

    async def _wait_sandbox_creations(self, sandbox_id: str) -> None:
        tasks = list(self._creating_in_sandbox.get(sandbox_id, ()))
        if tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)

    # -- recovery ----------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a (re)start, before serving: reserve names, reconcile every container with
        the kernel and conmon's files, tear down half-made ones, sweep orphans."""
        for record in self.store.list():
            container_id, status = record.record_id, record.status
            self.registrar.reserve(record.metadata.cri_name, container_id)
            if status.state is ContainerState.CREATING:
                await self._undo_failed_create(
                    record, ContainerError("crib stopped while the container was being created")
                )
            elif status.state in LIVE_STATES:
                init = status.init
                if init is not None and init.is_alive():
                    self._watch(container_id, init)
                    continue
                await self._handle_exit(container_id)
                log.info("container %s exited while crib was down", container_id)
            elif status.state is ContainerState.EXITED:
                # After a reboot nothing is mounted; after a crash mid-exit it may be.
                await asyncio.to_thread(self._unmount_all, record)
        await asyncio.to_thread(self._sweep_orphans)
        live = {r.record_id for r in self.store.list()}
        for snapshot_id in list(self.images.snapshots.snapshots()):
            owner = snapshot_id.split("-v", 1)[0]
            if owner not in live:
                log.warning("removing orphan container snapshot %s", snapshot_id)
                await self.images.remove_rootfs(snapshot_id)

    def _sweep_orphans(self) -> None:
        """Bundles, persist dirs and exit files of containers without a record (a crash
        during Remove)."""
        live = {r.record_id for r in self.store.list()}
        for name in _listdir(self.bundles_dir):
            if name in live:
                continue
            bundle = os.path.join(self.bundles_dir, name)
            log.warning("removing orphan container bundle %s", bundle)
            targets = sorted(glob.glob(os.path.join(bundle, VOLUMES_DIR, "*")))
            targets.append(os.path.join(bundle, ROOTFS_DIR))
            try:
                for target in targets:
                    host_rootfs.unmount_all(target)
            except ContainerHostError as err:
                log.error("orphan bundle %s: %s", bundle, err)
                continue
            _rmtree(bundle)
        for name in _listdir(self.persist_root):
            if name not in live:
                _rmtree(os.path.join(self.persist_root, name))

    async def close(self) -> None:
        """Stop watching containers (daemon shutdown; containers keep running)."""
        watchers = list(self._watchers.values())
        self._watchers.clear()
        for task in watchers:
            task.cancel()
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def image_name(image: ImageRecord) -> str:
    """The name the image store knows an image by: its first tag, else its id."""
    return image.repo_tags[0] if image.repo_tags else image.image_id


def _volume_snapshot(container_id: str, index: int) -> str:
    return f"{container_id}-v{index}"


def _raise_first(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _update_spec_resources(bundle_dir: str, oci: dict[str, Any]) -> None:
    """Keep config.json's linux.resources in step with `runtime update` (verbose status)."""
    path = os.path.join(bundle_dir, CONFIG_FILE)
    spec = _read_json(path)
    if spec is None:
        return
    current = spec.setdefault("linux", {}).setdefault("resources", {})
    for key, value in oci.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            current[key].update(value)
        else:
            current[key] = value
    atomicfile.write_json(path, spec)


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
