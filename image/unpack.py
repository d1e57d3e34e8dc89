"""Safe layer unpack: a (compressed) tar into one directory, in overlayfs form.

    blob ─► sniff magic (gzip 1f8b / zstd 28b52ffd / tar) ─► decompress ─► sha256 (DiffID)
                                                                       └─► tar entries ─► <dest>

Each entry is applied with the rules of image-spec layer.md: an existing directory is kept
when the entry is a directory (its attributes updated), anything else already at the path is
replaced. Whiteouts become what overlayfs understands (containerd OverlayConvertWhiteout):

    <dir>/.wh.<name>      ->  <dir>/<name> as a character device 0:0
    <dir>/.wh..wh..opq    ->  trusted.overlay.opaque=y on <dir>
    <dir>/.wh..wh.<other> ->  skipped (aufs metadata)

Safety against hostile layers (CVE-2014-6407, CVE-2014-9356, CVE-2021-32760, CVE-2024-5154):
  * every write happens relative to a directory fd opened from the layer root one component
    at a time with O_NOFOLLOW|O_DIRECTORY: a parent that is a symlink (say the layer made
    `etc -> /etc` and then wrote `etc/passwd`) is refused, never followed;
  * names that are absolute or contain `..` are refused; hard-link targets obey the same rules
    and must be inside the layer (or in a lower layer of the same image, see below);
  * files are created O_CREAT|O_EXCL|O_NOFOLLOW after removing what was there, and owners,
    modes, xattrs and times are set through the new fd or with follow_symlinks=False;
  * symlinks are stored as they are (absolute targets are normal in images) and never followed;
  * device nodes are created inside the layer only; whether a container may open them is
    decided by its device cgroup, as with runc/CRI-O/containerd;
  * `trusted.overlay.*` xattrs from the tar are dropped: only whiteouts may steer overlayfs
    (a forged redirect or metacopy xattr would make one file show another's content).
The caller unpacks into a fresh private directory and renames it into place only after the
blob digest and the DiffID both matched, so nothing half-written is ever used.

A hard link to a file of a lower layer cannot be a hard link across layer directories: it is
returned in `UnpackStats.deferred_links`, and `resolve_deferred_links` copies the file from the
lower layers once they are unpacked (Docker's overlay2 driver does the same copy-up).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import shutil
import stat
import tarfile
import typing
import urllib.parse
import zlib
from collections.abc import Sequence
from typing import BinaryIO, Protocol

import zstandard

from image.errors import DigestMismatchError, LayerFormatError, UnsafeLayerError

log = logging.getLogger("crib.image.unpack")

READ_BYTES = 1 << 20
# Output produced per decompress call: bounds memory against "zip bomb" chunks.
DECOMPRESS_OUT_BYTES = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
# Directory fds kept open while unpacking (the rest are reopened on demand).
DIR_FD_CACHE = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass
class UnpackStats:
    """What unpacking one layer produced."""

    diff_id: str = ""
    size_bytes: int = 0  # bytes of regular-file content
    disk_bytes: int = 0  # bytes allocated for them
    inodes: int = 0
    # (link path, target path) of hard links whose target is in a lower layer.
    deferred_links: list[tuple[str, str]] = dataclasses.field(default_factory=list)


# --- decompression ---------------------------------------------------------------------------


class _GzipReader:
    """Streaming gzip decoder accepting concatenated members (pigz, Docker) and trailing
    zero padding; raises LayerFormatError on corruption or truncation."""

    def __init__(self, raw: BinaryIO, what: str) -> None:
        self._raw = raw
        self._what = what
        self._d = zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed bytes not yet given to the decompressor
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        limit = DECOMPRESS_OUT_BYTES if size < 0 else max(1, min(size, DECOMPRESS_OUT_BYTES))
        while not self._eof:
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._raw.read(READ_BYTES)
                if not data:
                    if not self._d.eof:
                        raise LayerFormatError(f"{self._what}: gzip stream is truncated")
                    self._eof = True
                    break
            try:
                out = self._d.decompress(data, limit)
            except zlib.error as err:
                raise LayerFormatError(f"{self._what}: corrupt gzip data: {err}") from None
            if self._d.eof:
                rest = self._d.unused_data + self._d.unconsumed_tail
                if rest.strip(b"\0"):
                    self._d = zlib.decompressobj(wbits=31)  # another member follows
                    self._pending = rest
                else:
                    self._eof = not self._drain_padding()
                    if not self._eof:
                        self._d = zlib.decompressobj(wbits=31)
            if out:
                return out
        return b""

    def _drain_padding(self) -> bool:
        """Read past trailing zeros; True if a further gzip member starts after them."""
        while True:
            data = self._raw.read(READ_BYTES)
            if not data:
                return False
            stripped = data.lstrip(b"\0")
            if stripped:
                self._pending = stripped
                return True


class _HashingReader:
    """Passes bytes through while hashing them (the DiffID of the uncompressed tar)."""

    def __init__(self, inner: _Readable) -> None:
        self._inner = inner
        self.hash = hashlib.sha256()
        self.total_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.hash.update(data)
        self.total_bytes += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the tar reader left, e.g. end-of-archive padding."""
        while self.read(READ_BYTES):
            pass


def decompressed(raw: BinaryIO, what: str) -> _Readable:
    """A reader of the uncompressed tar in `raw`, chosen by the magic bytes (registries do
    mislabel media types, so the content decides, as in containerd's DecompressStream)."""
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(GZIP_MAGIC):
        return _GzipReader(raw, what)
    if head == ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=READ_BYTES, read_across_frames=True
        )
        return _ZstdReader(reader, what)
    return raw


class _ZstdReader:
    def __init__(self, inner: _Readable, what: str) -> None:
        self._inner = inner
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size if size > 0 else DECOMPRESS_OUT_BYTES)
        except zstandard.ZstdError as err:
            raise LayerFormatError(f"{self._what}: corrupt zstd data: {err}") from None


# --- names -----------------------------------------------------------------------------------


def split_name(name: str, what: str) -> tuple[str, ...]:
    """The components of a tar entry name, refusing absolute names and `..`."""
    if name.startswith("/"):
        raise UnsafeLayerError(f"{what}: entry {name!r} has an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayerError(f"{what}: entry {name!r} contains '..'")
    return parts


def _show(parts: Sequence[str]) -> str:
    return "/".join(parts) or "."


# --- the tree being written ---------------------------------------------------------------------


class _Tree:
    """Directory fds under the layer root, opened without following symlinks."""

    def __init__(self, root_fd: int, what: str) -> None:
        self.root_fd = root_fd
        self.what = what
        self._fds: collections.OrderedDict[tuple[str, ...], int] = collections.OrderedDict()

    def dir_fd(self, parts: tuple[str, ...], create: bool, entry: str) -> int:
        """The fd of directory `parts`, creating missing directories (0755) when `create`.

        Raises UnsafeLayerError when a component is a symlink or not a directory, and
        FileNotFoundError when it is missing and `create` is false.
        """
        if not parts:
            return self.root_fd
        fd = self._fds.get(parts)
        if fd is not None:
            self._fds.move_to_end(parts)
            return fd
        parent = self.dir_fd(parts[:-1], create, entry)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeLayerError(
                    f"{self.what}: entry {entry!r}: parent {_show(parts)!r} is a symlink;"
                    " refusing to write through it"
                ) from None
            raise UnsafeLayerError(
                f"{self.what}: entry {entry!r}: parent {_show(parts)!r} is not a directory"
            ) from None
        self._fds[parts] = fd
        while len(self._fds) > DIR_FD_CACHE:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def forget(self, parts: tuple[str, ...]) -> None:
        """Drop cached fds of `parts` and everything below (it was removed or replaced)."""
        n = len(parts)
        for key in [k for k in self._fds if k[:n] == parts]:
            os.close(self._fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_whiteout(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def _remove(tree: _Tree, parent_fd: int, parts: tuple[str, ...], st: os.stat_result) -> None:
    name = parts[-1]
    if stat.S_ISDIR(st.st_mode):
        tree.forget(parts)
        # shutil.rmtree with dir_fd never follows symlinks inside what it removes.
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """xattrs carried by PAX records (SCHILY.xattr.* and LIBARCHIVE.xattr.*)."""
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            found.append((key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape")))
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr.") :])
            with contextlib.suppress(ValueError):
                found.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
    return [(n, v) for n, v in found if not n.startswith("trusted.overlay.")]


class _Applier:
    """Applies tar entries to one layer directory."""

    def __init__(self, root_fd: int, what: str) -> None:
        self.tree = _Tree(root_fd, what)
        self.what = what
        self.stats = UnpackStats()
        self.dir_times: list[tuple[tuple[str, ...], int]] = []
        self.root = os.geteuid() == 0

    def close(self) -> None:
        self.tree.close()

    def _chown(self, name: str, parent_fd: int, member: tarfile.TarInfo) -> None:
        try:
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        except PermissionError:
            if self.root:
                raise

    def _set_xattrs_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        for name, value in _xattrs(member):
            try:
                os.setxattr(fd, name, value)
            except OSError as err:
                # As containerd: unsupported xattrs (SELinux labels on a host without it)
                # are skipped with a note, not fatal.
                log.debug("%s: %s: xattr %s not set: %s", self.what, member.name, name, err)

    def _set_xattrs_link(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        path = f"/proc/self/fd/{parent_fd}/{name}"
        for key, value in _xattrs(member):
            try:
                os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as err:
                log.debug("%s: %s: xattr %s not set: %s", self.what, member.name, key, err)

    @staticmethod
    def _mtime_ns(member: tarfile.TarInfo) -> int:
        return int(member.mtime * 1_000_000_000)

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = split_name(member.name, self.what)
        if not parts:
            return  # the layer root itself: its attributes are the container's business
        parent_parts, name = parts[:-1], parts[-1]
        parent_fd = self.tree.dir_fd(parent_parts, True, member.name)
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent_fd, parent_parts, name, member)
            return
        existing = _lstat(name, parent_fd)
        if member.isdir():
            self._directory(parent_fd, parts, existing, member)
            return
        if member.islnk():
            self._hardlink(parent_fd, parts, existing, member)
            return
        if not (member.isreg() or member.issym() or member.isdev()):
            log.debug("%s: %s: tar type %r skipped", self.what, member.name, member.type)
            return
        if existing is not None:
            _remove(self.tree, parent_fd, parts, existing)
        if member.isreg():
            self._regular(tar, parent_fd, name, member)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
            self._chown(name, parent_fd, member)
            self._set_xattrs_link(parent_fd, name, member)
            ns = self._mtime_ns(member)
            os.utime(name, ns=(ns, ns), dir_fd=parent_fd, follow_symlinks=False)
        else:
            self._device(parent_fd, name, member)
        self.stats.inodes += 1

    def _whiteout(
        self, parent_fd: int, parent_parts: tuple[str, ...], name: str, member: tarfile.TarInfo
    ) -> None:
        if name == OPAQUE_WHITEOUT:
            os.setxattr(parent_fd, OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata
        target = name[len(WHITEOUT_PREFIX) :]
        if not target or target in (".", ".."):
            raise UnsafeLayerError(f"{self.what}: entry {member.name!r} is an invalid whiteout")
        parts = (*parent_parts, target)
        existing = _lstat(target, parent_fd)
        if existing is not None:
            _remove(self.tree, parent_fd, parts, existing)
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent_fd)
        self._chown(target, parent_fd, member)
        self.stats.inodes += 1

    def _directory(
        self,
        parent_fd: int,
        parts: tuple[str, ...],
        existing: os.stat_result | None,
        member: tarfile.TarInfo,
    ) -> None:
        name = parts[-1]
        opaque = False
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            if existing is not None:
                # A directory replacing this layer's whiteout of the same name must hide
                # the lower directory's children too: make it opaque.
                opaque = _is_whiteout(existing)
                _remove(self.tree, parent_fd, parts, existing)
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            self.stats.inodes += 1
        fd = self.tree.dir_fd(parts, False, member.name)
        if opaque:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        try:
            os.fchown(fd, member.uid, member.gid)
        except PermissionError:
            if self.root:
                raise
        os.fchmod(fd, stat.S_IMODE(member.mode))
        self._set_xattrs_fd(fd, member)
        self.dir_times.append((parts, self._mtime_ns(member)))

    def _regular(
        self, tar: tarfile.TarFile, parent_fd: int, name: str, member: tarfile.TarInfo
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
        try:
            source = tar.extractfile(member)
            if source is not None and member.size:
                written = 0
                while True:
                    chunk = source.read(READ_BYTES)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    written += len(chunk)
                if written != member.size:
                    raise LayerFormatError(
                        f"{self.what}: entry {member.name!r} is truncated"
                        f" ({written} of {member.size} bytes)"
                    )
            # Owner before mode (chown clears set-id bits), xattrs after both (chown and
            # write clear security.capability), times last.
            try:
                os.fchown(fd, member.uid, member.gid)
            except PermissionError:
                if self.root:
                    raise
            os.fchmod(fd, stat.S_IMODE(member.mode))
            self._set_xattrs_fd(fd, member)
            ns = self._mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
            self.stats.size_bytes += member.size
            self.stats.disk_bytes += os.fstat(fd).st_blocks * 512
        finally:
            os.close(fd)

    def _device(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        if member.ischr():
            kind = stat.S_IFCHR
        elif member.isblk():
            kind = stat.S_IFBLK
        else:
            kind = stat.S_IFIFO
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent_fd)
        self._chown(name, parent_fd, member)
        # The node was just created by us in a private directory: not a symlink.
        os.chmod(name, stat.S_IMODE(member.mode), dir_fd=parent_fd)
        ns = self._mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=parent_fd, follow_symlinks=False)

    def _hardlink(
        self,
        parent_fd: int,
        parts: tuple[str, ...],
        existing: os.stat_result | None,
        member: tarfile.TarInfo,
    ) -> None:
        target = split_name(member.linkname, self.what)
        if not target:
            raise UnsafeLayerError(
                f"{self.what}: entry {member.name!r} is a hard link to the layer root"
            )
        if target == parts:
            return
        try:
            target_parent = self.tree.dir_fd(target[:-1], False, member.name)
            target_st = _lstat(target[-1], target_parent)
        except FileNotFoundError:
            target_st = None
        if target_st is None:
            # Not in this layer: a file of a lower layer (resolved after those are unpacked).
            if existing is not None:
                _remove(self.tree, parent_fd, parts, existing)
            self.stats.deferred_links.append((_show(parts), _show(target)))
            return
        if stat.S_ISDIR(target_st.st_mode):
            raise UnsafeLayerError(
                f"{self.what}: entry {member.name!r} is a hard link to directory"
                f" {member.linkname!r}"
            )
        if existing is not None:
            if (existing.st_dev, existing.st_ino) == (target_st.st_dev, target_st.st_ino):
                return
            _remove(self.tree, parent_fd, parts, existing)
        os.link(
            target[-1],
            parts[-1],
            src_dir_fd=target_parent,
            dst_dir_fd=parent_fd,
            follow_symlinks=False,
        )

    def finish(self) -> None:
        """Set directory times last: creating entries inside a directory changes its mtime."""
        for parts, ns in self.dir_times:
            try:
                fd = self.tree.dir_fd(parts, False, _show(parts))
            except (FileNotFoundError, UnsafeLayerError):
                continue  # removed or replaced later in the same layer
            os.utime(fd, ns=(ns, ns))


def unpack_layer(blob_path: str, dest: str, diff_id: str, what: str) -> UnpackStats:
    """Unpack the layer blob at `blob_path` into the empty directory `dest`.

    Raises UnsafeLayerError (hostile entry), LayerFormatError (not a readable tar) or
    DigestMismatchError (the uncompressed tar is not `diff_id`). On error `dest` holds a
    partial tree: the caller removes it.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    applier = _Applier(root_fd, what)
    try:
        with open(blob_path, "rb") as raw:
            reader = _HashingReader(decompressed(raw, what))
            try:
                with tarfile.open(
                    fileobj=typing.cast("BinaryIO", reader),
                    mode="r|",
                    bufsize=READ_BYTES,
                    errors="surrogateescape",
                ) as tar:
                    for member in tar:
                        applier.apply(tar, member)
            except (tarfile.TarError, EOFError) as err:
                raise LayerFormatError(f"{what}: not a valid tar: {err}") from None
            reader.drain()
        applier.finish()
    finally:
        applier.close()
        os.close(root_fd)
    actual = f"sha256:{reader.hash.hexdigest()}"
    if diff_id.startswith("sha256:") and actual != diff_id:
        raise DigestMismatchError(
            f"{what}: uncompressed content has digest {actual}, the image config says {diff_id}"
        )
    if not diff_id.startswith("sha256:"):
        raise DigestMismatchError(f"{what}: DiffID {diff_id} uses an algorithm crib cannot check")
    stats = applier.stats
    stats.diff_id = actual
    return stats


def resolve_deferred_links(
    dest: str, links: Sequence[tuple[str, str]], lower_dirs: Sequence[str], what: str
) -> None:
    """Materialize hard links to lower-layer files as copies in `dest`.

    `lower_dirs` are the unpacked lower layers, top-most first. The first layer holding the
    target (and not whiting it out) provides the content; links to the same target share
    one copy.
    """
    if not links:
        return
    root_fd = os.open(dest, _DIR_FLAGS)
    tree = _Tree(root_fd, what)
    copied: dict[str, tuple[str, ...]] = {}
    try:
        for link, target in links:
            link_parts = split_name(link, what)
            parent_fd = tree.dir_fd(link_parts[:-1], True, link)
            existing = _lstat(link_parts[-1], parent_fd)
            if existing is not None:
                _remove(tree, parent_fd, link_parts, existing)
            if target in copied:
                first = copied[target]
                os.link(
                    first[-1],
                    link_parts[-1],
                    src_dir_fd=tree.dir_fd(first[:-1], False, link),
                    dst_dir_fd=parent_fd,
                    follow_symlinks=False,
                )
                continue
            _copy_from_lowers(split_name(target, what), lower_dirs, parent_fd, link_parts, what)
            copied[target] = link_parts
    finally:
        tree.close()
        os.close(root_fd)


def _copy_from_lowers(
    target: tuple[str, ...],
    lower_dirs: Sequence[str],
    dest_parent_fd: int,
    link_parts: tuple[str, ...],
    what: str,
) -> None:
    for lower in lower_dirs:
        lower_fd = os.open(lower, _DIR_FLAGS)
        lower_tree = _Tree(lower_fd, what)
        try:
            try:
                parent = lower_tree.dir_fd(target[:-1], False, _show(link_parts))
            except (FileNotFoundError, UnsafeLayerError):
                continue
            st = _lstat(target[-1], parent)
            if st is None:
                continue
            if _is_whiteout(st) or not stat.S_ISREG(st.st_mode):
                break
            src = os.open(target[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                dst = os.open(link_parts[-1], flags, 0o600, dir_fd=dest_parent_fd)
                try:
                    while chunk := os.read(src, READ_BYTES):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(dst, view) :]
                    os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    for name in os.listxattr(src):
                        with contextlib.suppress(OSError):
                            os.setxattr(dst, name, os.getxattr(src, name))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            return
        finally:
            lower_tree.close()
            os.close(lower_fd)
    raise LayerFormatError(
        f"{what}: hard link {_show(link_parts)!r} points to {_show(target)!r}, which no layer"
        " below holds as a regular file"
    )
