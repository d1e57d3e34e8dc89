"""The container lifecycle's decisions without root: a recording fake runtime, real child
processes standing in for container inits, records on a temp dir. Start failures, Stop
when the runtime lost the container, grace periods, exits noticed by the watch, recovery
from conmon's files and of half-made containers, idempotent removal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from cri.config import Config
from cri.containers import manager as manager_module
from cri.containers.errors import ContainerStateError
from cri.containers.manager import ContainerManager, new_container_store
from cri.containers.records import ContainerState, ContainerStatus, Process
from cri.pods.manager import new_sandbox_store
from cri.pods.records import SandboxState
from cri.specgen import HostFacts
from cri.store import KeyedLock, Registrar
from sandbox.monitor import proc
from sandbox.monitor.conmon import Conmon
from sandbox.oci.errors import OciContainerNotFoundError, OciRuntimeError
from tests.unit.test_container_records import metadata


class FakeRuntime:
    """Records calls; `kill` signals the pid the test registered for the container."""

    path = "/fake/runtime"
    root = "/fake/root"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.pids: dict[str, int] = {}
        self.fail_start = False
        self.lost = False  # the runtime no longer knows any container

    async def start(self, container_id: str) -> None:
        self.calls.append(("start", container_id))
        if self.fail_start:
            raise OciRuntimeError("runc start: exec format error", "start")

    async def kill(
        self, container_id: str, signal_name: str = "KILL", all_processes: bool = False
    ) -> None:
        self.calls.append(("kill", container_id, signal_name))
        if self.lost:
            raise OciContainerNotFoundError("runc kill: container does not exist", "kill")
        os.kill(self.pids[container_id], int(signal_name))

    async def delete(self, container_id: str, force: bool = False) -> None:
        self.calls.append(("delete", container_id))

    async def update(self, container_id: str, resources: Any) -> None:
        self.calls.append(("update", container_id))


class FakeImages:
    class snapshots:
        @staticmethod
        def snapshots() -> dict[str, object]:
            return {}

    async def remove_rootfs(self, container_id: str) -> None:
        pass


def child(code: str) -> int:
    """A direct child (nothing else waits for it) running Python `code`."""
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))


@pytest.fixture
def env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setattr(manager_module, "EXIT_FILE_GRACE_S", 0.05)
    config = Config(root=str(tmp_path / "root"), state=str(tmp_path / "state"))
    runtime = FakeRuntime()
    store = new_container_store(config.root)
    store.load()
    registrar = Registrar()
    conmon = Conmon("conmon", str(tmp_path / "state" / "exits"), str(tmp_path / "state" / "s"))
    manager = ContainerManager(
        config,
        store,
        registrar,
        KeyedLock(),
        new_sandbox_store(config.root),
        lambda ref: None,
        FakeImages(),  # type: ignore[arg-type]
        conmon,
        lambda handler: runtime,  # type: ignore[arg-type,return-value]
        lambda handler: HostFacts(),
    )
    spawned: list[int] = []
    yield {
        "manager": manager,
        "runtime": runtime,
        "store": store,
        "registrar": registrar,
        "tmp": tmp_path,
        "spawned": spawned,
    }
    for pid in spawned:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def add_container(
    env: dict[str, Any],
    state: ContainerState,
    code: str = "import time; time.sleep(60)",
    **status: Any,
) -> tuple[str, int]:
    """A record in `state` whose init is a real child running `code`."""
    pid = child(code)
    env["spawned"].append(pid)
    container_id = os.urandom(32).hex()
    tmp: pathlib.Path = env["tmp"]
    meta = metadata(
        cri_name=f"k8s_c_{container_id[:6]}",
        bundle_dir=str(tmp / "bundles" / container_id),
        persist_dir=str(tmp / "persist" / container_id),
        cgroups_path=f"/cctr-unit-none/crib-{container_id}",
    )
    started = proc.start_time(pid)
    assert started is not None
    record_status = ContainerStatus(state, init=Process(pid, started), **status)
    env["store"].create(container_id, meta, record_status)
    env["registrar"].reserve(meta.cri_name, container_id)
    env["runtime"].pids[container_id] = pid
    return container_id, pid


def test_failed_start_leaves_the_container_exited_with_start_error(env: dict[str, Any]) -> None:
    manager, runtime = env["manager"], env["runtime"]
    container_id, pid = add_container(env, ContainerState.CREATED)
    runtime.fail_start = True
    # start needs a ready sandbox: the record names none, so refuse first, then fake one
    with pytest.raises(ContainerStateError, match="not ready"):
        asyncio.run(manager.start(container_id))
    ready = types.SimpleNamespace(status=types.SimpleNamespace(state=SandboxState.READY))
    manager.sandboxes.get = lambda sandbox_id: ready  # type: ignore[method-assign]
    with pytest.raises(OciRuntimeError, match="exec format error"):
        asyncio.run(manager.start(container_id))
    status = env["store"].get(container_id).status
    assert status.state is ContainerState.EXITED
    assert status.reason == "StartError"
    assert "exec format error" in status.message
    assert status.exit_code == 137  # the init was killed
    assert status.released
    assert ("kill", container_id, "9") in runtime.calls
    assert ("delete", container_id) in runtime.calls
    assert proc.start_time(pid) is None


def test_stop_when_the_runtime_lost_the_container_signals_the_init(env: dict[str, Any]) -> None:
    manager, runtime = env["manager"], env["runtime"]
    container_id, pid = add_container(env, ContainerState.RUNNING, started_at_ns=1)
    runtime.lost = True
    asyncio.run(manager.stop(container_id, 5))
    status = env["store"].get(container_id).status
    assert status.state is ContainerState.EXITED
    assert status.exit_code == 128 + signal.SIGTERM  # reaped by crib: conmon is gone
    assert proc.start_time(pid) is None
    asyncio.run(manager.stop(container_id, 5))  # again: nothing to do


def test_grace_period_then_sigkill(env: dict[str, Any]) -> None:
    manager = env["manager"]
    ready = env["tmp"] / "ready"
    ignores = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f" pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    container_id, _ = add_container(env, ContainerState.RUNNING, code=ignores, started_at_ns=1)
    for _ in range(500):
        if ready.exists():
            break
        time.sleep(0.01)
    loop_time = asyncio.run(_timed(manager.stop(container_id, 0.5)))
    assert loop_time >= 0.5
    assert env["store"].get(container_id).status.exit_code == 137
    calls = [c for c in env["runtime"].calls if c[0] == "kill"]
    assert [c[2] for c in calls] == ["15", "9"]


async def _timed(coroutine: Any) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await coroutine
    return loop.time() - started


def test_exit_watch_notices_an_exit(env: dict[str, Any]) -> None:
    manager = env["manager"]
    container_id, _ = add_container(
        env, ContainerState.RUNNING, code="import time; time.sleep(0.2); raise SystemExit(3)"
    )

    async def scenario() -> ContainerStatus:
        record = env["store"].get(container_id)
        manager._watch(container_id, record.status.init)
        for _ in range(200):
            await asyncio.sleep(0.05)
            status = env["store"].get(container_id).status
            if status.state is ContainerState.EXITED:
                return status
        raise AssertionError("exit not noticed")

    status = asyncio.run(scenario())
    assert (status.exit_code, status.reason) == (3, "Error")


def test_recovery_reads_exits_from_conmon_files_and_undoes_half_creations(
    env: dict[str, Any],
) -> None:
    manager, store = env["manager"], env["store"]
    exited, pid = add_container(env, ContainerState.RUNNING, code="pass", started_at_ns=1)
    os.waitpid(pid, 0)  # gone, as after a crib restart (not crib's child any more)
    persist = pathlib.Path(store.get(exited).metadata.persist_dir)
    persist.mkdir(parents=True)
    (persist / "exit").write_text("42")
    running, _ = add_container(env, ContainerState.RUNNING, started_at_ns=1)
    half, _ = add_container(env, ContainerState.CREATING)
    half_name = store.get(half).metadata.cri_name
    asyncio.run(_recover(manager))
    status = store.get(exited).status
    assert (status.state, status.exit_code) == (ContainerState.EXITED, 42)
    assert status.finished_at_ns == os.stat(persist / "exit").st_ctime_ns
    assert store.get(running).status.state is ContainerState.RUNNING
    assert store.get(half) is None
    assert env["registrar"].holder(half_name) is None


async def _recover(manager: ContainerManager) -> None:
    await manager.recover()
    await manager.close()


def test_remove_is_idempotent_and_frees_the_name(env: dict[str, Any]) -> None:
    manager, store = env["manager"], env["store"]
    container_id, pid = add_container(env, ContainerState.RUNNING, started_at_ns=1)
    name = store.get(container_id).metadata.cri_name
    asyncio.run(manager.remove(container_id))
    assert store.get(container_id) is None
    assert env["registrar"].holder(name) is None
    assert proc.start_time(pid) is None
    asyncio.run(manager.remove(container_id))
    asyncio.run(manager.remove("f" * 64))
    asyncio.run(manager.stop("f" * 64, 10))
