"""In-memory stores backed by crash-safe files: records, name reservations, per-id locks."""

from cri.store.locks import KeyedLock
from cri.store.records import (
    JsonCodec,
    Record,
    RecordCorruptError,
    RecordStore,
    RecordVersionError,
)
from cri.store.registrar import NameReservedError, Registrar

__all__ = [
    "JsonCodec",
    "KeyedLock",
    "NameReservedError",
    "Record",
    "RecordCorruptError",
    "RecordStore",
    "RecordVersionError",
    "Registrar",
]
