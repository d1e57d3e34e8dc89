"""The image service against the fake registry: pulls, names, single-flight, removal,
garbage collection, crash repair and container rootfs mounts."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from image.errors import (
    DigestMismatchError,
    ImageStoreError,
    ManifestError,
    UnsafeLayerError,
)
from image.registry import RegistryHost
from image.service import ImageService, ImageServiceConfig
from image.snapshots import OverlayMount
from tests import imagebuild as ib
from tests.fakes.registry import FakeRegistry

T = TypeVar("T")

BASE = ib.Layer([ib.directory("etc"), ib.file("etc/base", b"base")])
APP = ib.Image([BASE, ib.Layer([ib.file("app", b"app v1")])], config={"User": "app:app"})
APP2 = ib.Image([BASE, ib.Layer([ib.file("app", b"app v2")])], config={"User": "1000"})


def make(tmp_path: pathlib.Path, reg: FakeRegistry, **kw: object) -> ImageService:
    config = ImageServiceConfig(
        root=str(tmp_path / "images"),
        registries={reg.host: RegistryHost(mirrors=(reg.url,), upstream=False)},
        registry_backoff_s=0.01,
        registry_attempts=2,
        **kw,  # type: ignore[arg-type]
    )
    service = ImageService(config)
    service.load()
    return service


def run(service: ImageService, body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await body()
        finally:
            await service.close()

    return asyncio.run(main())


def test_pull_then_find_by_every_name(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        digest = reg.add_image("team/app", "v1", APP)
        service = make(tmp_path, reg)
        record = run(service, lambda: service.pull(f"{reg.host}/team/app:v1"))
        assert record.image_id == APP.image_id
        assert record.repo_tags == (f"{reg.host}/team/app:v1",)
        assert record.repo_digests == (f"{reg.host}/team/app@{digest}",)
        assert record.size_bytes > len(b"base" + b"app v1")
        assert record.user == "app:app"
        hex_id = APP.image_id.removeprefix("sha256:")
        for name in (
            APP.image_id,
            hex_id,
            hex_id[:12],
            f"{reg.host}/team/app:v1",
            f"{reg.host}/team/app@{digest}",
            f"{reg.host}/team/app:other@{digest}",
        ):
            assert service.status(name) == record, name
        assert service.status(f"{reg.host}/team/app:v2") is None
        assert service.status("busybox") is None
        assert service.images() == [record]
        assert service.images(f"{reg.host}/team/app:v1") == [record]
        assert service.config_of(record)["config"]["User"] == "app:app"
        # What was unpacked is each layer's tree, in its own directory.
        base_dir = pathlib.Path(service.snapshots.diff_dir(BASE.diff_id))
        assert (base_dir / "etc/base").read_bytes() == b"base"
        # The compressed layers are not kept; manifest and config are.
        assert set(service.content.digests()) == {digest, APP.image_id}


def test_restart_keeps_images(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        service = make(tmp_path, reg)
        record = run(service, lambda: service.pull(f"{reg.host}/app:v1"))
        again = make(tmp_path, reg)
        assert again.status(f"{reg.host}/app:v1") == record


def test_concurrent_pulls_share_downloads(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        reg.add_image("app", "v2", APP2)
        service = make(tmp_path, reg)

        async def body() -> list[object]:
            return await asyncio.gather(
                service.pull(f"{reg.host}/app:v1"),
                service.pull(f"{reg.host}/app:v1"),
                service.pull(f"{reg.host}/app:v2"),
            )

        one, two, _ = run(service, body)
        assert one == two
        for layer in (*APP.layers, APP2.layers[1]):
            assert reg.blob_gets(layer.digest) == 1, layer.digest
        assert service.metrics.pulls_joined_total == 1
        assert service.metrics.pulls_succeeded_total == 2
        # Pulling again downloads no layer.
        service2 = make(tmp_path, reg)
        run(service2, lambda: service2.pull(f"{reg.host}/app:v1"))
        assert reg.blob_gets(BASE.digest) == 1
        assert service2.metrics.layers_reused_total == 2


def test_tag_moves_to_the_new_image(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "latest", APP)
        service = make(tmp_path, reg)
        first = run(service, lambda: service.pull(f"{reg.host}/app"))
        reg.add_image("app", "latest", APP2)
        service = make(tmp_path, reg)
        second = run(service, lambda: service.pull(f"{reg.host}/app:latest"))
        old = service.status(first.image_id)
        assert old is not None
        assert old.repo_tags == ()
        assert old.repo_digests == first.repo_digests
        assert second.repo_tags == (f"{reg.host}/app:latest",)


def test_same_image_two_names_one_record(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("a", "1", APP)
        reg.add_image("b", "2", APP)
        service = make(tmp_path, reg)

        async def body() -> None:
            await service.pull(f"{reg.host}/a:1")
            await service.pull(f"{reg.host}/b:2")

        run(service, body)
        (record,) = service.images()
        assert sorted(record.repo_tags) == [f"{reg.host}/a:1", f"{reg.host}/b:2"]
        assert len(record.repo_digests) == 2


def test_remove_frees_only_unshared_layers(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        reg.add_image("app", "v2", APP2)
        service = make(tmp_path, reg)

        async def body() -> None:
            await service.pull(f"{reg.host}/app:v1")
            await service.pull(f"{reg.host}/app:v2")
            assert await service.remove(f"{reg.host}/app:v1") is not None
            assert await service.remove(f"{reg.host}/app:v1") is None  # gone: not an error

        run(service, body)
        layers = set(service.snapshots.layers())
        assert layers == {BASE.diff_id, APP2.layers[1].diff_id}
        assert not os.path.exists(service.snapshots.diff_dir(APP.layers[1].diff_id))
        assert APP.image_id not in set(service.content.digests())
        run(service, lambda: service.remove(APP2.image_id))
        assert service.snapshots.layers() == {}
        assert list(service.content.digests()) == []
        assert os.listdir(service.snapshots.links_dir) == []


def test_snapshot_keeps_layers_of_removed_image(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        service = make(tmp_path, reg)

        async def body() -> OverlayMount:
            record = await service.pull(f"{reg.host}/app:v1")
            mount = service.prepare_rootfs("cimg-c1", record.image_id)
            assert service.prepare_rootfs("cimg-c1", record.image_id) == mount  # idempotent
            await service.remove(record.image_id)
            return mount

        mount = run(service, body)
        assert all(os.path.isdir(d) for d in mount.lowerdirs)
        assert mount.lowerdirs == tuple(
            service.snapshots.diff_dir(layer.diff_id) for layer in reversed(APP.layers)
        )
        assert os.path.isdir(mount.upperdir)
        assert os.path.isdir(mount.workdir)
        # A restart still knows the snapshot and keeps its layers.
        service = make(tmp_path, reg)
        assert service.rootfs_mount("cimg-c1") == mount
        run(service, lambda: service.remove_rootfs("cimg-c1"))
        assert service.snapshots.layers() == {}
        assert not os.path.exists(os.path.dirname(mount.upperdir))


def test_prepare_rootfs_errors(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        reg.add_image("app", "v2", APP2)
        service = make(tmp_path, reg)

        async def body() -> None:
            await service.pull(f"{reg.host}/app:v1")
            await service.pull(f"{reg.host}/app:v2")

        run(service, body)
        from common.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError

        with pytest.raises(NotFoundError, match="nosuch"):
            service.prepare_rootfs("cimg-c2", "nosuch:1")
        with pytest.raises(InvalidArgumentError, match="container id"):
            service.prepare_rootfs("../x", APP.image_id)
        service.prepare_rootfs("cimg-c3", APP.image_id)
        with pytest.raises(AlreadyExistsError, match="cimg-c3"):
            service.prepare_rootfs("cimg-c3", APP2.image_id)
        with pytest.raises(NotFoundError, match="cimg-none"):
            service.rootfs_mount("cimg-none")


def test_failed_pull_leaves_nothing_behind(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        reg.blobs[APP.layers[1].digest] = b"y" * len(APP.layers[1].blob)
        service = make(tmp_path, reg)
        with pytest.raises(DigestMismatchError):
            run(service, lambda: service.pull(f"{reg.host}/app:v1"))
        assert service.images() == []
        layers_dir = pathlib.Path(service.snapshots.layers_dir)
        names = {p.name for p in layers_dir.iterdir()} - {"l"}
        # The good layer may have been unpacked (it is reusable); nothing half-written is.
        assert all(not n.startswith((".tmp-", ".del-")) for n in names)
        assert list(pathlib.Path(service.content.ingest_dir).iterdir()) == []
        # A restart collects the layer no image uses.
        service = make(tmp_path, reg)
        assert service.snapshots.layers() == {}


def test_hostile_layer_fails_pull_cleanly(tmp_path: pathlib.Path) -> None:
    evil = ib.Layer([ib.symlink("x", "/"), ib.file("x/cimg-evil", b"evil")])
    with FakeRegistry() as reg:
        reg.add_image("evil", "1", ib.Image([evil]))
        service = make(tmp_path, reg)
        with pytest.raises(UnsafeLayerError, match="refusing to write through it"):
            run(service, lambda: service.pull(f"{reg.host}/evil:1"))
        assert not os.path.exists("/cimg-evil")
        assert service.snapshots.layers() == {}


def test_layer_count_mismatch(tmp_path: pathlib.Path) -> None:
    lying = ib.Image([BASE], diff_ids=[BASE.diff_id, BASE.diff_id])
    with FakeRegistry() as reg:
        reg.add_image("lie", "1", lying)
        service = make(tmp_path, reg)
        with pytest.raises(ManifestError, match="1 layers, config lists 2"):
            run(service, lambda: service.pull(f"{reg.host}/lie:1"))


def test_index_selects_host_platform(tmp_path: pathlib.Path) -> None:
    other = "arm64" if ib.host_arch() != "arm64" else "amd64"
    mine = ib.Image([ib.Layer([ib.file("arch", b"mine")])])
    theirs = ib.Image([ib.Layer([ib.file("arch", b"theirs")])], architecture=other)
    with FakeRegistry() as reg:
        index_digest = reg.add_index("multi", "1", [theirs, mine])
        service = make(tmp_path, reg)
        record = run(service, lambda: service.pull(f"{reg.host}/multi:1"))
        assert record.image_id == mine.image_id
        assert record.repo_digests == (f"{reg.host}/multi@{index_digest}",)
        assert record.manifest_digest == mine.manifest_digest
        assert reg.blob_gets(theirs.layers[0].digest) == 0


def test_hardlink_to_lower_layer(tmp_path: pathlib.Path) -> None:
    image = ib.Image(
        [
            ib.Layer([ib.file("bin/tool", b"tool", mode=0o755)]),
            ib.Layer([ib.hardlink("usr/bin/tool", "bin/tool")]),
        ]
    )
    with FakeRegistry() as reg:
        reg.add_image("links", "1", image)
        service = make(tmp_path, reg)
        run(service, lambda: service.pull(f"{reg.host}/links:1"))
        upper = pathlib.Path(service.snapshots.diff_dir(image.layers[1].diff_id))
        assert (upper / "usr/bin/tool").read_bytes() == b"tool"


def test_crash_leftovers_repaired_on_load(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        reg.add_image("app", "v2", APP2)
        service = make(tmp_path, reg)

        async def body() -> None:
            await service.pull(f"{reg.host}/app:v1")
            await service.pull(f"{reg.host}/app:v2")

        run(service, body)
        layers = pathlib.Path(service.snapshots.layers_dir)
        # A crash mid-pull: a half-unpacked layer and a half-downloaded blob.
        (layers / f".tmp-{'e' * 64}-1234").mkdir()
        (pathlib.Path(service.content.ingest_dir) / "partial").write_bytes(b"x")
        # A crash mid-removal: the index lost v2, its layer dir was renamed aside.
        index_path = pathlib.Path(service.index.path)
        doc = json.loads(index_path.read_text())
        doc["images"] = [i for i in doc["images"] if i["image_id"] != APP2.image_id]
        index_path.write_text(json.dumps(doc))
        only_v2 = APP2.layers[1].diff_id.removeprefix("sha256:")
        (layers / only_v2).rename(layers / f".del-{only_v2}-abcd")
        # A layer dir whose metadata is unreadable.
        os.unlink(layers / APP.layers[1].diff_id.removeprefix("sha256:") / "layer.json")
        service = make(tmp_path, reg)
        assert list(pathlib.Path(service.content.ingest_dir).iterdir()) == []
        # v1 lost a layer: it is dropped rather than listed unrunnable (then nothing uses the
        # base layer, so it goes too); a pull brings it back.
        assert service.images() == []
        assert os.listdir(layers) == ["l"]
        assert os.listdir(layers / "l") == []
        record = run(service, lambda: service.pull(f"{reg.host}/app:v1"))
        assert record.image_id == APP.image_id


def test_unknown_index_version_refuses_load(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (root / "images.json").write_text('{"version": 7, "images": []}')
    service = ImageService(ImageServiceConfig(root=str(root)))
    with pytest.raises(ImageStoreError, match="unknown version 7"):
        service.load()


def test_pinned_images(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        digest = reg.add_image("app", "v1", APP)
        reg.add_image("app", "v2", APP2)
        service = make(
            tmp_path, reg, pinned_images=(f"{reg.host}/app:v1", APP2.image_id, "busybox")
        )

        async def body() -> None:
            await service.pull(f"{reg.host}/app:v1")
            await service.pull(f"{reg.host}/app:v2")

        run(service, body)
        assert service.is_pinned(service.require(APP.image_id))
        assert service.is_pinned(service.require(APP2.image_id))
        by_digest = make(tmp_path, reg, pinned_images=(f"{reg.host}/app@{digest}",))
        assert by_digest.is_pinned(by_digest.require(APP.image_id))
        assert not by_digest.is_pinned(by_digest.require(APP2.image_id))


def test_fs_usage(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        reg.add_image("app", "v1", APP)
        service = make(tmp_path, reg)

        async def body() -> tuple[object, object]:
            record = await service.pull(f"{reg.host}/app:v1")
            mount = service.prepare_rootfs("cimg-u1", record.image_id)
            pathlib.Path(mount.upperdir, "written").write_bytes(b"x" * 10000)
            return await service.fs_usage()

        images, containers = run(service, body)
        assert images.mountpoint == service.config.root  # type: ignore[attr-defined]
        assert images.used_bytes > 0  # type: ignore[attr-defined]
        assert images.inodes_used >= 3  # type: ignore[attr-defined]
        assert containers.used_bytes >= 10000  # type: ignore[attr-defined]


def test_mount_data_short_form_for_many_layers(tmp_path: pathlib.Path) -> None:
    mount = OverlayMount(
        lowerdirs=tuple(f"/var/lib/crib/images/layers/{i:064x}/diff" for i in range(100)),
        upperdir="/u",
        workdir="/w",
        short_lowerdirs=tuple(f"l/{i:016X}" for i in range(100)),
        short_base="/var/lib/crib/images/layers",
    )
    data, cwd = mount.mount_data(page_bytes=4096)
    assert cwd == "/var/lib/crib/images/layers"
    assert data.startswith("lowerdir=l/")
    assert len(data) < 4096
    few = OverlayMount(mount.lowerdirs[:3], "/u", "/w", mount.short_lowerdirs[:3], "/x")
    assert few.mount_data(4096) == (few.options(), None)


@pytest.mark.root
def test_many_layer_image_mounts(tmp_path: pathlib.Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) missing")
    # 60 layers under a long root: the absolute lowerdir list exceeds a page.
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    layers = [ib.Layer([ib.file(f"f{i}", str(i).encode())], "none") for i in range(60)]
    layers.append(ib.Layer([ib.file("f0", b"top")], "none"))
    with FakeRegistry() as reg:
        reg.add_image("many", "1", ib.Image(layers))
        service = make(deep, reg)
        record = run(service, lambda: service.pull(f"{reg.host}/many:1"))
        mount = service.prepare_rootfs("cimg-many", record.image_id)
        data, cwd = mount.mount_data()
        assert cwd is not None
        assert len(mount.options()) >= 4096
        target = tmp_path / "mnt"
        target.mkdir()
        # A private mount namespace: the mount disappears with the process.
        script = f'mount -t overlay overlay -o "$1" {target} && cat {target}/f0 {target}/f59'
        out = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", data],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout == "top59"


def test_layer_given_up_by_its_pull_is_fetched_again(tmp_path: pathlib.Path) -> None:
    with FakeRegistry() as reg:
        service = make(tmp_path, reg)
        started: list[str] = []

        async def body() -> None:
            async def forever() -> None:
                await asyncio.sleep(3600)

            owned_elsewhere = asyncio.create_task(forever())

            def start() -> asyncio.Task[None]:
                started.append("again")
                return asyncio.create_task(asyncio.sleep(0))

            joiner = asyncio.create_task(service._join_layer(BASE.diff_id, owned_elsewhere, start))
            await asyncio.sleep(0)
            owned_elsewhere.cancel()  # the pull that owned the download failed
            await joiner  # this pull still completes: it restarted the layer itself

        run(service, body)
        assert started == ["again"]
