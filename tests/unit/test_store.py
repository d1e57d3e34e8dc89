"""Record stores: crash safety at every step, version refusal, registrar, per-id locks."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys

import pytest

from common import atomicfile
from cri.store import (
    KeyedLock,
    NameReservedError,
    RecordCorruptError,
    RecordStore,
    RecordVersionError,
    Registrar,
)
from tests.fakes.records import ThingMetadata, ThingStatus
from tests.unit import crash_child

REPO = pathlib.Path(__file__).resolve().parents[2]


def new_store(path: pathlib.Path) -> RecordStore[ThingMetadata, ThingStatus]:
    store: RecordStore[ThingMetadata, ThingStatus] = RecordStore(
        str(path), "thing", 1, ThingMetadata, ThingStatus
    )
    store.load()
    return store


def test_create_get_update_delete_and_reload(tmp_path: pathlib.Path) -> None:
    store = new_store(tmp_path)
    store.create("t1", ThingMetadata("one", {"a": "b"}), ThingStatus("created"))
    store.update_status("t1", lambda s: ThingStatus("running", s.generation + 1))
    again = new_store(tmp_path)
    record = again.require("t1")
    assert record.metadata == ThingMetadata("one", {"a": "b"})
    assert record.status == ThingStatus("running", 1)
    assert again.delete("t1") is True
    assert again.delete("t1") is False  # idempotent
    assert new_store(tmp_path).get("t1") is None


def test_create_refuses_duplicate_id(tmp_path: pathlib.Path) -> None:
    store = new_store(tmp_path)
    store.create("t1", ThingMetadata("one"), ThingStatus("created"))
    with pytest.raises(Exception, match="already exists"):
        store.create("t1", ThingMetadata("one"), ThingStatus("created"))


@pytest.mark.parametrize("bad_id", ["", ".hidden", "a/b", "../x"])
def test_create_refuses_unsafe_ids(tmp_path: pathlib.Path, bad_id: str) -> None:
    with pytest.raises(ValueError, match="invalid record id"):
        new_store(tmp_path).create(bad_id, ThingMetadata("x"), ThingStatus("created"))


def test_failed_update_changes_nothing(tmp_path: pathlib.Path) -> None:
    store = new_store(tmp_path)
    store.create("t1", ThingMetadata("one"), ThingStatus("created"))

    def boom(status: ThingStatus) -> ThingStatus:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        store.update_status("t1", boom)
    assert store.require("t1").status == ThingStatus("created")
    assert new_store(tmp_path).require("t1").status == ThingStatus("created")


def test_unknown_version_is_refused_naming_file(tmp_path: pathlib.Path) -> None:
    store = new_store(tmp_path)
    store.create("t1", ThingMetadata("one"), ThingStatus("created"))
    meta_path = tmp_path / "t1" / "metadata.json"
    doc = json.loads(meta_path.read_text())
    doc["version"] = 7
    meta_path.write_text(json.dumps(doc))
    with pytest.raises(RecordVersionError) as err:
        new_store(tmp_path)
    assert str(meta_path) in str(err.value)
    assert "unknown version 7" in str(err.value)
    assert "version 1" in str(err.value)


def test_corrupt_record_is_refused_naming_file(tmp_path: pathlib.Path) -> None:
    store = new_store(tmp_path)
    store.create("t1", ThingMetadata("one"), ThingStatus("created"))
    (tmp_path / "t1" / "status.json").write_text("{not json")
    with pytest.raises(RecordCorruptError, match=r"status\.json"):
        new_store(tmp_path)


def run_crashing(dir_path: pathlib.Path, operation: str, crash_at: int) -> int:
    return subprocess.run(
        [sys.executable, "-m", "tests.unit.crash_child", str(dir_path), operation, str(crash_at)],
        cwd=REPO,
        timeout=60,
    ).returncode


@pytest.mark.parametrize(
    ("operation", "before", "after"),
    [
        (
            "create",
            {"t1": ("one", "created", 0)},
            {"t1": ("one", "created", 0), "t2": ("two", "created", 0)},
        ),
        ("update", {"t1": ("one", "created", 0)}, {"t1": ("one", "running", 1)}),
        ("delete", {"t1": ("one", "created", 0)}, {}),
    ],
)
def test_interrupted_at_every_step_leaves_a_loadable_store(
    tmp_path: pathlib.Path,
    operation: str,
    before: dict[str, tuple[str, str, int]],
    after: dict[str, tuple[str, str, int]],
) -> None:
    crashes = 0
    for crash_at in range(1, 200):
        dir_path = tmp_path / f"run{crash_at}"
        new_store(dir_path).create("t1", ThingMetadata("one"), ThingStatus("created"))
        code = run_crashing(dir_path, operation, crash_at)
        store = new_store(dir_path)  # must load whatever the crash left
        seen = {r.record_id: (r.metadata.name, r.status.state, r.status.generation) for r in store}
        assert seen in (before, after), f"crash at call {crash_at}: {seen}"
        # Leftovers of the interrupted write are swept by the load.
        leftovers = [n for n in os.listdir(dir_path) if n.startswith(".")]
        assert leftovers == [], f"crash at call {crash_at}: {leftovers}"
        if code == 0:
            assert seen == after
            break
        assert code == crash_child.CRASHED
        crashes += 1
    else:
        pytest.fail("the operation never completed")
    assert crashes >= 3  # the operation really was interrupted at several steps


def test_atomic_write_replaces_whole_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.json"
    atomicfile.write_json(str(path), {"a": 1})
    atomicfile.write_json(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["f.json"]


def test_registrar_reserves_and_names_holder() -> None:
    names = Registrar()
    names.reserve("k8s_POD_web_default_uid_0", "sandbox-a")
    names.reserve("k8s_POD_web_default_uid_0", "sandbox-a")  # same holder: fine
    with pytest.raises(NameReservedError) as err:
        names.reserve("k8s_POD_web_default_uid_0", "sandbox-b")
    assert "sandbox-a" in str(err.value)
    assert err.value.holder_id == "sandbox-a"
    names.release_id("sandbox-a")
    names.reserve("k8s_POD_web_default_uid_0", "sandbox-b")
    assert names.holder("k8s_POD_web_default_uid_0") == "sandbox-b"
    names.release("k8s_POD_web_default_uid_0")
    assert names.name_of("sandbox-b") is None


def test_keyed_lock_serialises_per_key_only() -> None:
    async def scenario() -> list[str]:
        locks = KeyedLock()
        order: list[str] = []

        async def work(key: str, tag: str, delay: float) -> None:
            async with locks.hold(key):
                order.append(f"{tag}+")
                await asyncio.sleep(delay)
                order.append(f"{tag}-")

        await asyncio.gather(work("a", "a1", 0.05), work("a", "a2", 0.0), work("b", "b1", 0.01))
        assert locks._locks == {}  # entries dropped once unused
        return order

    order = asyncio.run(scenario())
    # a2 waits for a1; b1 runs meanwhile.
    assert order.index("a1-") < order.index("a2+")
    assert order.index("b1+") < order.index("a1-")
