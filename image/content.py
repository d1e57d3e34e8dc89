"""The content store: blobs addressed by digest.

    <dir>/blobs/sha256/<hex>           committed, verified content (read-only)
    <dir>/ingest/<hex>-<random>        a download in progress (never read by anyone else)

An ingest hashes every byte as it is written; `commit` compares digest and size with
the descriptor, then renames the file into `blobs/` (rename(2) is atomic), so a blob
path only ever holds verified content. A crash leaves at most files in `ingest/`,
which `sweep` removes at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator

from common import atomicfile
from image.errors import DigestMismatchError
from image.reference import check_digest


def _split(digest: str) -> tuple[str, str]:
    check_digest(digest)
    algorithm, _, encoded = digest.partition(":")
    return algorithm, encoded


class Ingest:
    """One blob being written: hashed while streaming, verified on commit."""

    def __init__(self, store: ContentStore, digest: str, size: int) -> None:
        self.store = store
        self.digest = digest
        self.expected_size = size
        algorithm, encoded = _split(digest)
        self.path = os.path.join(store.ingest_dir, f"{encoded}-{secrets.token_hex(4)}")
        self._algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed by commit/abort

    def write(self, data: bytes | memoryview) -> None:
        """Append `data`; refuses to grow past the descriptor's size."""
        if self.size + len(data) > self.expected_size:
            raise DigestMismatchError(
                f"blob {self.digest}: more than the {self.expected_size} bytes its descriptor says"
            )
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._file.fileno(), view) :]
        self.size += len(data)

    def reset(self) -> None:
        """Start over (the server ignored a Range request and sent everything again)."""
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.new(self._algorithm)
        self.size = 0

    def verify(self) -> None:
        """Raise `DigestMismatchError` unless what was written matches digest and size."""
        if self.size != self.expected_size:
            raise DigestMismatchError(
                f"blob {self.digest}: got {self.size} bytes, descriptor says {self.expected_size}"
            )
        actual = f"{self._algorithm}:{self._hash.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatchError(f"blob {self.digest}: content has digest {actual}")

    def commit(self, durable: bool = False) -> str:
        """Verify, then move into the store; returns the blob's path."""
        self.verify()
        if durable:
            os.fsync(self._file.fileno())
        self._file.close()
        target = self.store.path(self.digest)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        os.replace(self.path, target)
        if durable:
            atomicfile.fsync_dir(os.path.dirname(target))
        return target

    def abort(self) -> None:
        """Drop the partial download."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class ContentStore:
    """Verified blobs on disk, by digest."""

    def __init__(self, dir_path: str) -> None:
        self.dir_path = dir_path
        self.blobs_dir = os.path.join(dir_path, "blobs")
        self.ingest_dir = os.path.join(dir_path, "ingest")

    def prepare(self) -> None:
        """Create the directories."""
        for path in (self.blobs_dir, self.ingest_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)

    def sweep(self) -> int:
        """Remove downloads interrupted by a crash; returns how many."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.ingest_dir):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.ingest_dir, name))
                    removed += 1
        return removed

    def path(self, digest: str) -> str:
        """Where the blob `digest` lives (whether or not it is there)."""
        algorithm, encoded = _split(digest)
        return os.path.join(self.blobs_dir, algorithm, encoded)

    def has(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is present (with the given size, if any)."""
        try:
            st = os.stat(self.path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def ingest(self, digest: str, size: int) -> Ingest:
        """Start writing blob `digest` of `size` bytes."""
        return Ingest(self, digest, size)

    def write(self, digest: str, data: bytes) -> str:
        """Store a blob held in memory (verified, durable); returns its path."""
        ingest = self.ingest(digest, len(data))
        try:
            ingest.write(data)
            return ingest.commit(durable=True)
        except BaseException:
            ingest.abort()
            raise

    def read(self, digest: str) -> bytes:
        """The bytes of a stored blob (FileNotFoundError when absent)."""
        with open(self.path(digest), "rb") as f:
            return f.read()

    def delete(self, digest: str) -> None:
        """Remove a blob; absent is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))

    def digests(self) -> Iterator[str]:
        """Every stored blob's digest."""
        with contextlib.suppress(FileNotFoundError):
            for algorithm in os.listdir(self.blobs_dir):
                for encoded in os.listdir(os.path.join(self.blobs_dir, algorithm)):
                    yield f"{algorithm}:{encoded}"

    def usage(self) -> tuple[int, int]:
        """(bytes on disk, inodes) used by blobs and ingests."""
        used_bytes = inodes = 0
        for top in (self.blobs_dir, self.ingest_dir):
            for dir_path, _dirs, files in os.walk(top):
                inodes += 1
                for name in files:
                    with contextlib.suppress(FileNotFoundError):
                        used_bytes += os.lstat(os.path.join(dir_path, name)).st_blocks * 512
                        inodes += 1
        return used_bytes, inodes
