"""Persistent records: immutable versioned metadata + a mutable status, one directory each.

Layout of a store directory (one per object kind, e.g. <root>/sandboxes):

    <dir>/<record_id>/metadata.json   {"version": V, "kind": K, "record_id": ID, "metadata": {...}}
    <dir>/<record_id>/status.json     {"version": V, "status": {...}}
    <dir>/.<record_id>.tmp-<rand>/    a record being created (swept on load)
    <dir>/.del-<record_id>-<rand>/    a record being deleted (swept on load)

Crash safety, step by step:
  create   mkdir tmp dir → write both files → fsync → rename(tmp, <record_id>) → fsync dir
           (before the rename nothing is visible; after it the record is whole)
  update   status.json is replaced by atomicfile.write_json (temp, fsync, rename)
  delete   rename(<record_id>, .del-…) → fsync dir → rmtree
           (after the rename the record is gone for every reader; leftovers are swept)

A record written by a newer crib (unknown `version`) is refused with an error naming the
file and the version rather than misread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, Self, TypeVar

from common import atomicfile
from common.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError

METADATA_FILE = "metadata.json"
STATUS_FILE = "status.json"
DELETING_PREFIX = ".del-"


class RecordVersionError(FailedPreconditionError):
    """A record's format version is not one this crib can read."""


class RecordCorruptError(FailedPreconditionError):
    """A record file cannot be parsed."""


class JsonCodec(Protocol):
    """What metadata and status types provide: conversion to and from JSON-able data."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self: ...


M = TypeVar("M", bound=JsonCodec)
S = TypeVar("S", bound=JsonCodec)


@dataclasses.dataclass(frozen=True)
class Record(Generic[M, S]):
    """One stored object: its id, immutable metadata and current status."""

    record_id: str
    metadata: M
    status: S


class RecordStore(Generic[M, S]):
    """Records of one kind in one directory, cached in memory.

    Reads (`get`, `list`) never touch the disk. Writes are synchronous file I/O;
    callers serialise writes to one record with their per-id lock (`KeyedLock`).
    """

    def __init__(
        self,
        dir_path: str,
        kind: str,
        version: int,
        metadata_type: type[M],
        status_type: type[S],
    ) -> None:
        self.dir_path = dir_path
        self.kind = kind
        self.version = version
        self._metadata_type = metadata_type
        self._status_type = status_type
        self._records: dict[str, Record[M, S]] = {}
        self._mutex = threading.Lock()  # guards _records against writer threads

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> list[Record[M, S]]:
        """Read every record from disk, sweeping leftovers of interrupted writes.

        Raises `RecordVersionError` or `RecordCorruptError` naming the file at fault.
        """
        os.makedirs(self.dir_path, mode=0o700, exist_ok=True)
        loaded: dict[str, Record[M, S]] = {}
        for name in sorted(os.listdir(self.dir_path)):
            full = os.path.join(self.dir_path, name)
            if name.startswith(DELETING_PREFIX) or atomicfile.is_tmp_name(name):
                shutil.rmtree(full, ignore_errors=True) if os.path.isdir(full) else _unlink(full)
                continue
            if not os.path.isdir(full):
                continue
            loaded[name] = self._load_one(name, full)
        with self._mutex:
            self._records = loaded
        return list(loaded.values())

    def _load_one(self, record_id: str, record_dir: str) -> Record[M, S]:
        atomicfile.sweep_tmp(record_dir)
        meta_path = os.path.join(record_dir, METADATA_FILE)
        status_path = os.path.join(record_dir, STATUS_FILE)
        meta_doc = self._read(meta_path)
        status_doc = self._read(status_path)
        for path, doc in ((meta_path, meta_doc), (status_path, status_doc)):
            version = doc.get("version")
            if version != self.version:
                raise RecordVersionError(
                    f"{self.kind} record {path}: unknown version {version!r}"
                    f" (this crib reads version {self.version})"
                )
        if meta_doc.get("kind") != self.kind or meta_doc.get("record_id") != record_id:
            raise RecordCorruptError(
                f"{self.kind} record {meta_path}: kind {meta_doc.get('kind')!r} and id"
                f" {meta_doc.get('record_id')!r} do not match the directory"
            )
        try:
            metadata = self._metadata_type.from_json(meta_doc["metadata"])
            status = self._status_type.from_json(status_doc["status"])
        except (KeyError, TypeError, ValueError) as err:
            raise RecordCorruptError(f"{self.kind} record {record_dir}: {err!r}") from None
        return Record(record_id, metadata, status)

    def _read(self, path: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            raise RecordCorruptError(f"{self.kind} record file {path} is missing") from None
        except ValueError as err:
            raise RecordCorruptError(f"{self.kind} record {path}: not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise RecordCorruptError(f"{self.kind} record {path}: not a JSON object")
        return doc

    # -- reads (memory only) ---------------------------------------------------------------

    def get(self, record_id: str) -> Record[M, S] | None:
        """The record `record_id`, or None."""
        return self._records.get(record_id)

    def require(self, record_id: str) -> Record[M, S]:
        """The record `record_id`; `NotFoundError` naming it when absent."""
        record = self._records.get(record_id)
        if record is None:
            raise NotFoundError(f"{self.kind} {record_id} not found")
        return record

    def list(self) -> list[Record[M, S]]:
        """Every record, in no particular order."""
        return list(self._records.values())

    def __iter__(self) -> Iterator[Record[M, S]]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._records)

    # -- writes ----------------------------------------------------------------------------

    def create(self, record_id: str, metadata: M, status: S) -> Record[M, S]:
        """Write a new record durably; `AlreadyExistsError` if the id is taken."""
        _check_id(record_id)
        final = os.path.join(self.dir_path, record_id)
        if record_id in self._records or os.path.lexists(final):
            raise AlreadyExistsError(f"{self.kind} {record_id} already exists")
        os.makedirs(self.dir_path, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.dir_path, atomicfile.tmp_name(record_id))
        os.mkdir(tmp, 0o700)
        try:
            _write_json_durable(
                os.path.join(tmp, METADATA_FILE),
                {
                    "version": self.version,
                    "kind": self.kind,
                    "record_id": record_id,
                    "metadata": metadata.to_json(),
                },
            )
            _write_json_durable(
                os.path.join(tmp, STATUS_FILE),
                {"version": self.version, "status": status.to_json()},
            )
            atomicfile.fsync_dir(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomicfile.fsync_dir(self.dir_path)
        record = Record(record_id, metadata, status)
        with self._mutex:
            self._records[record_id] = record
        return record

    def update_status(self, record_id: str, update: Callable[[S], S]) -> S:
        """Compute the new status with `update(old)`, write it durably, then swap it in.

        If `update` raises, nothing changes. Callers hold the record's lock.
        """
        record = self.require(record_id)
        new_status = update(record.status)
        atomicfile.write_json(
            os.path.join(self.dir_path, record_id, STATUS_FILE),
            {"version": self.version, "status": new_status.to_json()},
        )
        with self._mutex:
            self._records[record_id] = dataclasses.replace(record, status=new_status)
        return new_status

    def delete(self, record_id: str) -> bool:
        """Remove a record; False if it did not exist (deletion is idempotent)."""
        final = os.path.join(self.dir_path, record_id)
        with self._mutex:
            self._records.pop(record_id, None)
        if not os.path.lexists(final):
            return False
        doomed = os.path.join(self.dir_path, f"{DELETING_PREFIX}{record_id}-{secrets.token_hex(4)}")
        os.rename(final, doomed)
        atomicfile.fsync_dir(self.dir_path)
        shutil.rmtree(doomed, ignore_errors=True)
        return True


def _write_json_durable(path: str, value: object) -> None:
    data = json.dumps(value, indent=1, sort_keys=True).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        atomicfile.write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _check_id(record_id: str) -> None:
    # Ids become directory names: refuse anything that could escape the store.
    if (
        not record_id
        or record_id.startswith(".")
        or "/" in record_id
        or "\0" in record_id
        or len(record_id) > 255
    ):
        raise ValueError(f"invalid record id {record_id!r}")
