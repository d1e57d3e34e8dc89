"""The image service: pull, list, status, remove, filesystem usage, container rootfs.

A pull, step by step (each blob verified against digest and size as it streams):

    resolve ref ─► manifest or index ─(platform)─► manifest ─► config (image id, DiffIDs)
         │
         ├─ lease the DiffIDs and digests (garbage collection leaves them alone)
         ├─ per layer, concurrently (at most `max_concurrent_downloads` downloading):
         │     already unpacked?  yes ─► reuse
         │     no ─► download to content/ingest ─► verify ─► unpack in a worker thread into
         │           layers/.tmp-… ─► DiffID verified ─► rename into layers/<hex> ─► drop blob
         ├─ store manifest(s) and config in the content store
         └─ index: add the image under its tag and repo digest (atomic file replace)

Two pulls of the same reference share one in-flight pull; two pulls of different images
sharing a layer share its download and unpack (single-flight by DiffID). A pull keeps going
when the caller goes away, so kubelet's retry joins it instead of starting over.

Removal takes the image out of the index, then removes every layer and blob no image, no
container snapshot and no in-flight pull needs. A crash anywhere leaves temp directories and
unreferenced layers, which `load` sweeps.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from image import manifest, reference
from image.auth import Credentials
from image.content import ContentStore
from image.errors import ImageNotFoundError, InvalidReferenceError, ManifestError
from image.manifest import Descriptor, Index, Manifest
from image.progress import PullMetrics, PullProgress
from image.reference import Reference
from image.registry import PullSession, RegistryClient, RegistryHost
from image.snapshots import OverlayMount, Snapshotter
from image.store import ImageIndex, ImageRecord
from image.unpack import resolve_deferred_links, unpack_layer

log = logging.getLogger("crib.image")

# How long a computed container-filesystem usage is reused (kubelet asks every few seconds).
USAGE_CACHE_S = 10.0


def _remove_dirs(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class ImageServiceConfig:
    """What the image service needs from crib's configuration."""

    root: str  # <root>/images
    registries: Mapping[str, RegistryHost] = dataclasses.field(default_factory=dict)
    pinned_images: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    pull_progress_timeout_s: float = 300.0
    registry_attempts: int = 4
    registry_backoff_s: float = 0.5
    user_agent: str = "crib"


@dataclasses.dataclass(frozen=True)
class FsUsage:
    """Usage of one filesystem crib keeps data on."""

    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


class ImageService:
    """Images of one daemon."""

    def __init__(self, config: ImageServiceConfig) -> None:
        self.config = config
        self.content = ContentStore(os.path.join(config.root, "content"))
        self.snapshots = Snapshotter(config.root)
        self.index = ImageIndex(config.root)
        self.metrics = PullMetrics()
        self._registry: RegistryClient | None = None
        self._pulls: dict[tuple[str, str], asyncio.Task[ImageRecord]] = {}
        self._layer_tasks: dict[str, asyncio.Task[None]] = {}
        self._leases: collections.Counter[str] = collections.Counter()
        self._download_slots = asyncio.Semaphore(config.max_concurrent_downloads)
        self._pinned: list[Reference | str] = []
        self._container_usage: tuple[float, int, int] | None = None

    @property
    def registry(self) -> RegistryClient:
        """The registry client (created on first use: it needs a running event loop)."""
        if self._registry is None:
            self._registry = RegistryClient(
                self.config.registries,
                progress_timeout_s=self.config.pull_progress_timeout_s,
                attempts=self.config.registry_attempts,
                backoff_s=self.config.registry_backoff_s,
                user_agent=self.config.user_agent,
            )
        return self._registry

    # -- start-up and shutdown ------------------------------------------------------------------

    def load(self) -> None:
        """Load the index and layers, repair what a crash left, collect garbage (blocking)."""
        os.makedirs(self.config.root, mode=0o711, exist_ok=True)
        self.content.prepare()
        swept = self.content.sweep()
        if swept:
            log.info("removed %d interrupted downloads", swept)
        for note in self.snapshots.load():
            log.warning("image store repair: %s", note)
        self.index.load()
        self._pinned = []
        for name in self.config.pinned_images:
            if reference.IMAGE_ID_RE.match(name.removeprefix("sha256:")):
                self._pinned.append(name)
                continue
            try:
                self._pinned.append(reference.parse(name))
            except InvalidReferenceError:
                self._pinned.append(name)
        # Images whose layers went missing (a crash mid-removal, or a hand-edited store)
        # are dropped, so what is listed can always be run.
        for image in self.index.all():
            missing = [d for d in image.diff_ids if not self.snapshots.has_layer(d)]
            if missing:
                log.warning("image %s lost layer %s; removing it", image.image_id, missing[0])
                self.index.remove(image.image_id)
        _remove_dirs(self._collect_garbage())

    async def close(self) -> None:
        """Close registry connections."""
        if self._registry is not None:
            await self._registry.aclose()
            self._registry = None

    # -- queries --------------------------------------------------------------------------------

    def status(self, name: str) -> ImageRecord | None:
        """The image `name` refers to (id, id prefix, tag, digest), or None."""
        return self.index.lookup(name)

    def images(self, name: str = "") -> list[ImageRecord]:
        """All images, or the one `name` refers to."""
        if name:
            image = self.index.lookup(name)
            return [image] if image is not None else []
        return self.index.all()

    def require(self, name: str) -> ImageRecord:
        """The image `name` refers to; NOT_FOUND naming it otherwise."""
        image = self.index.lookup(name)
        if image is None:
            raise ImageNotFoundError(f"image {name!r} not found")
        return image

    def config_of(self, image: ImageRecord) -> dict[str, Any]:
        """The image's config document (Entrypoint, Cmd, Env, User, ... under "config")."""
        import json

        try:
            doc = json.loads(self.content.read(image.image_id))
        except FileNotFoundError:
            raise ImageNotFoundError(f"config of image {image.image_id} is missing") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"config of image {image.image_id} is not a JSON object")
        return doc

    def is_pinned(self, image: ImageRecord) -> bool:
        """Whether the configuration pins this image (kubelet never garbage-collects it)."""
        for pin in self._pinned:
            if isinstance(pin, str):
                if pin in (image.image_id, image.image_id.removeprefix("sha256:")):
                    return True
            elif pin.digest is not None:
                if pin.with_digest(pin.digest) in image.repo_digests:
                    return True
            elif pin.tagged() in image.repo_tags:
                return True
        return False

    # -- pull -----------------------------------------------------------------------------------

    async def pull(self, image: str, credentials: Credentials | None = None) -> ImageRecord:
        """Pull `image` (normalized as docker does) and return its index record."""
        ref = reference.parse(image)
        who = ""
        if credentials is not None:
            who = hashlib.sha256(repr(dataclasses.astuple(credentials)).encode()).hexdigest()
        key = (str(ref), who)
        task = self._pulls.get(key)
        if task is None:
            task = asyncio.create_task(self._pull(ref, credentials))
            self._pulls[key] = task
            task.add_done_callback(functools.partial(self._pull_done, key))
        else:
            self.metrics.pulls_joined_total += 1
            log.info("pull of %s joins the one in flight", ref)
        # The pull goes on if this caller is cancelled: a retry joins it.
        return await asyncio.shield(task)

    def _pull_done(self, key: tuple[str, str], task: asyncio.Task[ImageRecord]) -> None:
        if self._pulls.get(key) is task:
            del self._pulls[key]
        if not task.cancelled():
            task.exception()  # a pull whose callers all went away fails quietly (logged above)

    async def _pull(self, ref: Reference, credentials: Credentials | None) -> ImageRecord:
        what = str(ref)
        started_s = time.monotonic()
        self.metrics.pulls_in_flight += 1
        progress = PullProgress(what, self.metrics)
        progress.start()
        try:
            record = await self._pull_steps(ref, credentials, progress)
        except BaseException as err:
            self.metrics.pulls_failed_total += 1
            elapsed_s = time.monotonic() - started_s
            # The edge logs the failure for the caller; this line is for pulls nobody awaits.
            log.debug("pull of %s failed after %.1f s: %s", what, elapsed_s, err)
            raise
        finally:
            progress.stop()
            self.metrics.pulls_in_flight -= 1
            self.metrics.pull_seconds_total += time.monotonic() - started_s
        self.metrics.pulls_succeeded_total += 1
        elapsed_s = max(time.monotonic() - started_s, 1e-6)
        received = progress.received_bytes
        log.info(
            "pulled %s as %s: %d layers, %.1f MiB downloaded in %.2f s (%.1f MiB/s)",
            what,
            record.image_id,
            len(record.diff_ids),
            received / (1 << 20),
            elapsed_s,
            received / (1 << 20) / elapsed_s,
        )
        return record

    async def _pull_steps(
        self, ref: Reference, credentials: Credentials | None, progress: PullProgress
    ) -> ImageRecord:
        what = str(ref)
        session = self.registry.session(ref, credentials)
        resolved = await session.resolve()
        content: dict[str, bytes] = {resolved.digest: resolved.body}
        doc = manifest.parse_document(resolved.body, resolved.media_type, what)
        manifest_digest = resolved.digest
        # An index may (rarely) point at another index: follow at most two levels.
        for _ in range(2):
            if not isinstance(doc, Index):
                break
            chosen = manifest.select_manifest(doc, manifest.host_platform(), what)
            content_type, body = await session.fetch_manifest(chosen.digest)
            manifest_digest = chosen.digest
            content[chosen.digest] = body
            doc = manifest.parse_document(body, content_type, f"{ref.name}@{chosen.digest}")
        if not isinstance(doc, Manifest):
            raise ManifestError(f"{what}: index nested too deeply")
        config_body = await session.fetch_blob_bytes(doc.config, manifest.CONFIG_MAX_BYTES)
        config = manifest.parse_config(config_body, f"{what}: config {doc.config.digest}")
        if len(config.diff_ids) != len(doc.layers):
            raise ManifestError(
                f"{what}: manifest has {len(doc.layers)} layers, config lists"
                f" {len(config.diff_ids)} diff_ids"
            )
        for desc in doc.layers:
            manifest.layer_compression(desc)  # refuse unknown layer types before any download
        image_id = doc.config.digest
        content[image_id] = config_body
        leased = [*config.diff_ids, *content, *(desc.digest for desc in doc.layers)]
        self._leases.update(leased)
        try:
            await self._ensure_layers(session, doc.layers, config.diff_ids, progress)
            for digest, body in content.items():
                if not self.content.has(digest, len(body)):
                    await asyncio.to_thread(self.content.write, digest, body)
            size_bytes = len(config_body) + sum(
                self.snapshots.layer(d).size_bytes for d in config.diff_ids
            )
            record = ImageRecord(
                image_id=image_id,
                repo_tags=(),
                repo_digests=(),
                size_bytes=size_bytes,
                diff_ids=config.diff_ids,
                manifest_digest=manifest_digest,
                user=config.user,
                content_digests=tuple(content),
                pulled_at_ns=time.time_ns(),
            )
            tag = ref.tagged() if ref.digest is None else None
            return self.index.put(record, tag, ref.with_digest(resolved.digest))
        finally:
            self._leases.subtract(leased)
            self._leases += collections.Counter()  # drop zero counts

    async def _ensure_layers(
        self,
        session: PullSession,
        layers: tuple[Descriptor, ...],
        diff_ids: tuple[str, ...],
        progress: PullProgress,
    ) -> None:
        """Make every layer present: reuse, join another pull's download, or fetch it."""
        waits: list[asyncio.Task[None]] = []
        own: list[asyncio.Task[None]] = []
        for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
            if self.snapshots.has_layer(diff_id):
                self.metrics.layers_reused_total += 1
                continue
            prior = list(waits)

            async def lowers_ready(prior: list[asyncio.Task[None]] = prior) -> None:
                await asyncio.gather(*prior)

            def start(
                desc: Descriptor = desc,
                diff_id: str = diff_id,
                lowers: tuple[str, ...] = diff_ids[:i],
                lowers_ready: Callable[[], Awaitable[None]] = lowers_ready,
            ) -> asyncio.Task[None]:
                task = asyncio.create_task(
                    self._fetch_and_unpack(session, desc, diff_id, lowers, lowers_ready, progress)
                )
                self._layer_tasks[diff_id] = task
                task.add_done_callback(functools.partial(self._layer_done, diff_id))
                own.append(task)
                return task

            shared = self._layer_tasks.get(diff_id)
            waits.append(asyncio.create_task(self._join_layer(diff_id, shared or start(), start)))
        try:
            await asyncio.gather(*waits)
        except BaseException:
            # Stop this pull's other downloads (a retry reuses what was committed); layers
            # other pulls started are theirs to finish.
            for task in (*waits, *own):
                task.cancel()
            await asyncio.gather(*waits, *own, return_exceptions=True)
            raise

    async def _join_layer(
        self,
        diff_id: str,
        task: asyncio.Task[None],
        start: Callable[[], asyncio.Task[None]],
    ) -> None:
        """Wait for a layer task; if the pull that owned it gave up (cancelled it) while this
        one still wants the layer, fetch it again."""
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
                    raise
            if self.snapshots.has_layer(diff_id):
                return
            task = self._layer_tasks.get(diff_id) or start()

    def _layer_done(self, diff_id: str, task: asyncio.Task[None]) -> None:
        if self._layer_tasks.get(diff_id) is task:
            del self._layer_tasks[diff_id]
        if not task.cancelled():
            task.exception()  # retrieved here so a failure shared by no one is not logged twice

    async def _fetch_and_unpack(
        self,
        session: PullSession,
        desc: Descriptor,
        diff_id: str,
        lowers: tuple[str, ...],
        lowers_ready: Callable[[], Awaitable[None]],
        progress: PullProgress,
    ) -> None:
        what = f"{session.ref.name}: layer {desc.digest}"
        async with self._download_slots:
            ingest = self.content.ingest(desc.digest, desc.size)
            download = progress.download(desc.digest, desc.size)
            try:
                await session.fetch_blob(
                    desc, ingest, on_bytes=lambda n: progress.received(download, n)
                )
                blob_path = ingest.commit()
            except BaseException:
                ingest.abort()
                raise
            progress.finished(download)
        tmp = self.snapshots.new_layer_dir(diff_id)
        try:
            started_s = time.monotonic()
            stats = await asyncio.to_thread(
                unpack_layer, blob_path, os.path.join(tmp, "diff"), diff_id, what
            )
            if stats.deferred_links:
                await lowers_ready()
                lower_dirs = [self.snapshots.diff_dir(d) for d in reversed(lowers)]
                await asyncio.to_thread(
                    resolve_deferred_links,
                    os.path.join(tmp, "diff"),
                    stats.deferred_links,
                    lower_dirs,
                    what,
                )
            self.snapshots.commit_layer(
                tmp, diff_id, stats.size_bytes, stats.disk_bytes, stats.inodes
            )
            log.debug(
                "%s: unpacked %.1f MiB, %d inodes in %.2f s",
                what,
                stats.size_bytes / (1 << 20),
                stats.inodes,
                time.monotonic() - started_s,
            )
        except BaseException:
            await asyncio.to_thread(self.snapshots.discard_layer_dir, tmp)
            raise
        finally:
            # Compressed layers are not kept once unpacked (as CRI-O): the layer directory
            # is what containers use, and keeping both would double the disk use.
            self.content.delete(desc.digest)

    # -- removal and garbage collection ---------------------------------------------------------

    async def remove(self, name: str) -> ImageRecord | None:
        """Remove the image `name` refers to, with its tags and digests, and free what no
        other image needs. An unknown image is not an error (CRI idempotence)."""
        image = self.index.lookup(name)
        if image is None:
            return None
        self.index.remove(image.image_id)
        self.metrics.images_removed_total += 1
        doomed = self._collect_garbage()
        if doomed:
            await asyncio.to_thread(_remove_dirs, doomed)
        log.info("removed image %s (%s)", image.image_id, ", ".join(image.repo_tags) or "untagged")
        return image

    def _collect_garbage(self) -> list[str]:
        """Detach every layer and blob nothing needs; returns directories to delete.

        Synchronous on purpose: deciding what is unused and detaching it happen with no
        await in between, so a pull cannot start reusing a layer being removed.
        """
        used_layers = set(self._leases)
        used_content = set(self._leases)
        for image in self.index.all():
            used_layers.update(image.diff_ids)
            used_content.update(image.content_digests)
        for snap in self.snapshots.snapshots().values():
            used_layers.update(snap.diff_ids)
        doomed = []
        for diff_id in self.snapshots.layers():
            if diff_id not in used_layers:
                path = self.snapshots.detach_layer(diff_id)
                if path is not None:
                    doomed.append(path)
                self.metrics.layers_removed_total += 1
        for digest in list(self.content.digests()):
            if digest not in used_content:
                self.content.delete(digest)
        return doomed

    # -- filesystem usage -----------------------------------------------------------------------

    async def fs_usage(self) -> tuple[FsUsage, FsUsage]:
        """(image filesystem, container filesystem) usage for ImageFsInfo."""
        now_ns = time.time_ns()
        layer_bytes, layer_inodes = self.snapshots.layers_usage()
        content_bytes, content_inodes = await asyncio.to_thread(self.content.usage)
        images = FsUsage(
            self.config.root, layer_bytes + content_bytes, layer_inodes + content_inodes, now_ns
        )
        cached = self._container_usage
        if cached is None or time.monotonic() - cached[0] > USAGE_CACHE_S:
            used, inodes = await asyncio.to_thread(self.snapshots.snapshots_usage)
            cached = (time.monotonic(), used, inodes)
            self._container_usage = cached
        containers = FsUsage(self.snapshots.snapshots_dir, cached[1], cached[2], now_ns)
        return images, containers

    # -- container root filesystems -------------------------------------------------------------

    def prepare_rootfs(self, container_id: str, image: str) -> OverlayMount:
        """Create the writable layer of `container_id` over image `image` (id, tag or digest)
        and return the overlay mount for its rootfs, mounting nothing. The layers stay on
        disk while the snapshot exists, even if the image is removed."""
        record = self.require(image)
        return self.snapshots.prepare(container_id, record.image_id, record.diff_ids)

    def rootfs_mount(self, container_id: str) -> OverlayMount:
        """The overlay mount of an existing container snapshot (NOT_FOUND otherwise)."""
        try:
            return self.snapshots.mount(container_id)
        except KeyError:
            raise ImageNotFoundError(f"container {container_id} has no rootfs snapshot") from None

    async def remove_rootfs(self, container_id: str) -> None:
        """Remove a container's writable layer (unmounted by the caller); absent is fine.
        Layers only it still needed are freed."""
        await asyncio.to_thread(self.snapshots.remove, container_id)
        doomed = self._collect_garbage()
        if doomed:
            await asyncio.to_thread(_remove_dirs, doomed)
