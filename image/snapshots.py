"""Unpacked layers and container snapshots on disk, and the overlay mounts they make.

    <dir>/layers/<diff hex>/diff/          one unpacked layer (overlayfs form), per DiffID
    <dir>/layers/<diff hex>/layer.json     {"version", "diff_id", "link", sizes}
    <dir>/layers/l/<LINK> -> ../<diff hex>/diff    short name for long mount option strings
    <dir>/layers/.tmp-<hex>-<rand>/        a layer being unpacked (swept at start-up)
    <dir>/layers/.del-<hex>-<rand>/        a layer being removed (swept at start-up)
    <dir>/snapshots/<container id>/{upper,work}/  a container's writable layer
    <dir>/snapshots/<container id>/snapshot.json  {"version", "image_id", "diff_ids"}
    <dir>/empty/                           the lower layer of an image without layers

Nothing here mounts anything (containerd core/snapshots: Prepare returns mounts). The
caller mounts `OverlayMount.mount_data()` with type "overlay": the data string must fit in
one page (mount(2)); with many layers the absolute lowerdir list does not, so the data then
names the layers by their short links relative to `layers/`, and the mounting process must
chdir there first (as containers/storage does with its l/ links).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
from typing import Any

from common import atomicfile
from common.errors import AlreadyExistsError, InvalidArgumentError
from image.errors import ImageStoreError

LAYER_FILE = "layer.json"
SNAPSHOT_FILE = "snapshot.json"
FORMAT_VERSION = 1
TMP_PREFIX = ".tmp-"
DEL_PREFIX = ".del-"
LINK_DIR = "l"
CONTAINER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One unpacked layer."""

    diff_id: str
    link: str
    size_bytes: int
    disk_bytes: int
    inodes: int

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LayerInfo:
        return cls(
            diff_id=str(doc["diff_id"]),
            link=str(doc["link"]),
            size_bytes=int(doc["size_bytes"]),
            disk_bytes=int(doc["disk_bytes"]),
            inodes=int(doc["inodes"]),
        )


@dataclasses.dataclass(frozen=True)
class OverlayMount:
    """An overlay mount for a container: not mounted, just described.

    `lowerdirs` are absolute and top-most first (the order of overlayfs `lowerdir=`),
    `short_lowerdirs` the same layers relative to `short_base`.
    """

    lowerdirs: tuple[str, ...]
    upperdir: str
    workdir: str
    short_lowerdirs: tuple[str, ...]
    short_base: str

    def options(self) -> str:
        """The mount data with absolute paths."""
        return (
            f"lowerdir={':'.join(self.lowerdirs)},upperdir={self.upperdir},workdir={self.workdir}"
        )

    def mount_data(self, page_bytes: int = PAGE_BYTES) -> tuple[str, str | None]:
        """(data, cwd): the mount(2) data for type "overlay" and the directory the mounting
        process must chdir to first (None when the data uses absolute paths only)."""
        data = self.options()
        if len(data) < page_bytes:
            return data, None
        short = (
            f"lowerdir={':'.join(self.short_lowerdirs)},upperdir={self.upperdir},"
            f"workdir={self.workdir}"
        )
        if len(short) < page_bytes:
            return short, self.short_base
        raise InvalidArgumentError(
            f"overlay mount of {len(self.lowerdirs)} layers does not fit in {page_bytes} bytes"
        )


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """A container's writable layer over an image's layers."""

    container_id: str
    image_id: str
    diff_ids: tuple[str, ...]


def _hex(diff_id: str) -> str:
    algorithm, _, encoded = diff_id.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[a-f0-9]{64}", encoded):
        raise ImageStoreError(f"layer {diff_id!r}: not a sha256 digest")
    return encoded


def _read_json(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        doc = json.loads(f.read())
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("version") != FORMAT_VERSION:
        raise ImageStoreError(f"{path}: unknown version {doc.get('version')!r}")
    return doc


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Snapshotter:
    """Layers by DiffID and container snapshots over them."""

    def __init__(self, dir_path: str) -> None:
        self.dir_path = dir_path
        self.layers_dir = os.path.join(dir_path, "layers")
        self.links_dir = os.path.join(self.layers_dir, LINK_DIR)
        self.snapshots_dir = os.path.join(dir_path, "snapshots")
        self.empty_dir = os.path.join(dir_path, "empty")
        self._layers: dict[str, LayerInfo] = {}
        self._snapshots: dict[str, SnapshotInfo] = {}

    # -- start-up -------------------------------------------------------------------------------

    def load(self) -> list[str]:
        """Read layers and snapshots, repairing what a crash left; returns notes on repairs."""
        notes: list[str] = []
        for path in (self.layers_dir, self.links_dir, self.snapshots_dir, self.empty_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(self.empty_dir, 0o755)
        layers: dict[str, LayerInfo] = {}
        for name in sorted(os.listdir(self.layers_dir)):
            full = os.path.join(self.layers_dir, name)
            if name == LINK_DIR:
                continue
            if name.startswith((TMP_PREFIX, DEL_PREFIX)):
                _rmtree(full)
                notes.append(f"removed interrupted {full}")
                continue
            try:
                # An unknown version (a newer crib) stops start-up: never delete its layers.
                info = LayerInfo.from_json(_read_json(os.path.join(full, LAYER_FILE)))
                if info.diff_id != f"sha256:{name}" or not os.path.isdir(
                    os.path.join(full, "diff")
                ):
                    raise ValueError("does not match its directory")
            except (OSError, ValueError, KeyError, TypeError) as err:
                _rmtree(full)
                notes.append(f"removed unreadable layer {full}: {err}")
                continue
            layers[info.diff_id] = info
        # Links: drop the dangling, recreate the missing.
        wanted = {info.link: info for info in layers.values()}
        for link in os.listdir(self.links_dir):
            if link not in wanted:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.links_dir, link))
        for link, info in wanted.items():
            path = os.path.join(self.links_dir, link)
            if not os.path.islink(path):
                os.symlink(f"../{_hex(info.diff_id)}/diff", path)
                notes.append(f"recreated link {path}")
        self._layers = layers
        snapshots: dict[str, SnapshotInfo] = {}
        for name in sorted(os.listdir(self.snapshots_dir)):
            full = os.path.join(self.snapshots_dir, name)
            if name.startswith((TMP_PREFIX, DEL_PREFIX)):
                _rmtree(full)
                continue
            try:
                doc = _read_json(os.path.join(full, SNAPSHOT_FILE))
                snapshots[name] = SnapshotInfo(
                    name, str(doc["image_id"]), tuple(str(d) for d in doc["diff_ids"])
                )
            except (OSError, ValueError, KeyError, TypeError) as err:
                notes.append(f"snapshot {full} unreadable ({err}); kept for inspection")
        self._snapshots = snapshots
        return notes

    # -- layers ---------------------------------------------------------------------------------

    def has_layer(self, diff_id: str) -> bool:
        """Whether the layer with this DiffID is unpacked."""
        return diff_id in self._layers

    def layer(self, diff_id: str) -> LayerInfo:
        """The unpacked layer `diff_id` (KeyError when absent)."""
        return self._layers[diff_id]

    def layers(self) -> dict[str, LayerInfo]:
        """Every unpacked layer by DiffID."""
        return dict(self._layers)

    def diff_dir(self, diff_id: str) -> str:
        """The directory holding the unpacked tree of layer `diff_id`."""
        return os.path.join(self.layers_dir, _hex(diff_id), "diff")

    def new_layer_dir(self, diff_id: str) -> str:
        """A fresh private directory to unpack `diff_id` into; its tree goes in `<it>/diff`."""
        tmp = os.path.join(self.layers_dir, f"{TMP_PREFIX}{_hex(diff_id)}-{secrets.token_hex(4)}")
        os.mkdir(tmp, 0o700)
        os.mkdir(os.path.join(tmp, "diff"), 0o755)
        return tmp

    def commit_layer(
        self, tmp: str, diff_id: str, size_bytes: int, disk_bytes: int, inodes: int
    ) -> LayerInfo:
        """Move an unpacked layer into place (atomic rename) and give it a short link."""
        if diff_id in self._layers:
            _rmtree(tmp)  # another pull won the race: identical content
            return self._layers[diff_id]
        link = self._new_link()
        info = LayerInfo(diff_id, link, size_bytes, disk_bytes, inodes)
        atomicfile.write_json(os.path.join(tmp, LAYER_FILE), info.to_json())
        os.chmod(tmp, 0o711)
        final = os.path.join(self.layers_dir, _hex(diff_id))
        os.rename(tmp, final)
        os.symlink(f"../{_hex(diff_id)}/diff", os.path.join(self.links_dir, link))
        atomicfile.fsync_dir(self.layers_dir)
        self._layers[diff_id] = info
        return info

    def discard_layer_dir(self, tmp: str) -> None:
        """Remove an unpack directory that will not be committed."""
        _rmtree(tmp)

    def detach_layer(self, diff_id: str) -> str | None:
        """Take layer `diff_id` out of the store: forget it, drop its link and rename its
        directory aside (quick, atomic). Returns the directory for the caller to delete
        (slow, best done in a thread); a crash before that leaves a `.del-` dir, swept."""
        info = self._layers.pop(diff_id, None)
        if info is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.links_dir, info.link))
        final = os.path.join(self.layers_dir, _hex(diff_id))
        doomed = os.path.join(
            self.layers_dir, f"{DEL_PREFIX}{_hex(diff_id)}-{secrets.token_hex(4)}"
        )
        try:
            os.rename(final, doomed)
        except FileNotFoundError:
            return None
        return doomed

    def remove_layer(self, diff_id: str) -> None:
        """Remove layer `diff_id` now."""
        doomed = self.detach_layer(diff_id)
        if doomed is not None:
            _rmtree(doomed)

    def _new_link(self) -> str:
        while True:
            link = base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")
            if not os.path.lexists(os.path.join(self.links_dir, link)):
                return link

    # -- container snapshots --------------------------------------------------------------------

    def _check_container_id(self, container_id: str) -> None:
        if not CONTAINER_ID_RE.match(container_id):
            raise InvalidArgumentError(
                f"container id {container_id!r}: want 1-128 of [A-Za-z0-9_.-], not starting"
                " with . - or _"
            )

    def prepare(self, container_id: str, image_id: str, diff_ids: tuple[str, ...]) -> OverlayMount:
        """Create the writable layer of `container_id` over `diff_ids` (base layer first) and
        return its overlay mount. Idempotent for the same image; ALREADY_EXISTS otherwise."""
        self._check_container_id(container_id)
        existing = self._snapshots.get(container_id)
        if existing is not None:
            if existing.diff_ids != diff_ids:
                raise AlreadyExistsError(
                    f"container {container_id} already has a snapshot of image {existing.image_id}"
                )
            return self.mount(container_id)
        for diff_id in diff_ids:
            if diff_id not in self._layers:
                raise ImageStoreError(f"layer {diff_id} of image {image_id} is not unpacked")
        tmp = os.path.join(self.snapshots_dir, f"{TMP_PREFIX}{container_id}-{secrets.token_hex(4)}")
        os.mkdir(tmp, 0o711)
        try:
            os.mkdir(os.path.join(tmp, "upper"), 0o755)
            os.mkdir(os.path.join(tmp, "work"), 0o700)
            info = SnapshotInfo(container_id, image_id, diff_ids)
            atomicfile.write_json(
                os.path.join(tmp, SNAPSHOT_FILE),
                {"version": FORMAT_VERSION, "image_id": image_id, "diff_ids": list(diff_ids)},
            )
            os.rename(tmp, os.path.join(self.snapshots_dir, container_id))
        except BaseException:
            _rmtree(tmp)
            raise
        atomicfile.fsync_dir(self.snapshots_dir)
        self._snapshots[container_id] = info
        return self.mount(container_id)

    def mount(self, container_id: str) -> OverlayMount:
        """The overlay mount of an existing snapshot (KeyError when there is none)."""
        info = self._snapshots[container_id]
        base = os.path.join(self.snapshots_dir, container_id)
        top_first = list(reversed(info.diff_ids))
        if top_first:
            lowers = tuple(self.diff_dir(d) for d in top_first)
            short = tuple(f"{LINK_DIR}/{self._layers[d].link}" for d in top_first)
        else:
            lowers = (self.empty_dir,)
            short = (self.empty_dir,)
        return OverlayMount(
            lowerdirs=lowers,
            upperdir=os.path.join(base, "upper"),
            workdir=os.path.join(base, "work"),
            short_lowerdirs=short,
            short_base=self.layers_dir,
        )

    def remove(self, container_id: str) -> None:
        """Remove a container's snapshot (the caller unmounted it). Absent is fine."""
        self._check_container_id(container_id)
        self._snapshots.pop(container_id, None)
        path = os.path.join(self.snapshots_dir, container_id)
        doomed = os.path.join(
            self.snapshots_dir, f"{DEL_PREFIX}{container_id}-{secrets.token_hex(4)}"
        )
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        _rmtree(doomed)

    def snapshots(self) -> dict[str, SnapshotInfo]:
        """Every container snapshot by container id."""
        return dict(self._snapshots)

    # -- usage ----------------------------------------------------------------------------------

    def layers_usage(self) -> tuple[int, int]:
        """(bytes, inodes) of the unpacked layers, from what was recorded at unpack."""
        used = sum(info.disk_bytes for info in self._layers.values())
        inodes = sum(info.inodes for info in self._layers.values())
        return used, inodes

    def snapshots_usage(self) -> tuple[int, int]:
        """(bytes, inodes) of the containers' writable layers (walks them: call in a thread)."""
        used_bytes = inodes = 0
        for dir_path, dirs, files in os.walk(self.snapshots_dir):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(os.path.join(dir_path, name))
                    used_bytes += st.st_blocks * 512
                    inodes += 1
        return used_bytes, inodes
