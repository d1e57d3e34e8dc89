"""ImageService end to end: a real registry (Debian's docker-registry on 127.0.0.1), images
built by the tests, crib driven over gRPC the way kubelet drives it."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from cri.api import api_pb2 as pb
from tests import imagebuild as ib
from tests.e2e.daemon import CribDaemon, running_crib
from tests.registry import Registry, running_registry

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LAYER1 = ib.Layer(
    [
        *ib.busybox_entries(),
        ib.directory("data"),
        ib.file("data/a", b"a"),
        ib.file("data/b", b"b"),
        ib.directory("data/sub"),
        ib.file("data/sub/x", b"x"),
        ib.directory("keep"),
        ib.file("keep/old", b"old"),
    ],
    "gzip",
)
LAYER2 = ib.Layer(
    [
        ib.directory("data"),
        ib.whiteout("data/a"),
        ib.directory("keep", mode=0o750, uid=1000, gid=1000),
        ib.opaque("keep"),
        ib.file("keep/new", b"new", uid=1000, gid=1000, mtime=1_650_000_000.25),
        ib.directory("lib"),
        ib.file("lib/real", b"real" * 1000, mode=0o4755),
        ib.hardlink("lib/link", "lib/real"),
        ib.symlink("lib/abs", "/etc/passwd"),
        ib.symlink("lib/rel", "real"),
        ib.device("lib/null", "char", 1, 3),
        ib.device("lib/fifo", "fifo", 0, 0, mode=0o600),
        ib.file("lib/attr", b"xattr", xattrs=(("user.crib", b"\x00\x01value"),)),
    ],
    "gzip",
)
LAYER3 = ib.Layer(
    [
        ib.directory("data"),
        ib.directory("zstd", mode=0o700, uid=1000, gid=1000),
        ib.file("zstd/random", ib.random_bytes(1 << 20, 3)),
        ib.whiteout("data/sub"),
    ],
    "zstd",
)
LAYERED = ib.Image([LAYER1, LAYER2, LAYER3], config={"User": "1000:1000"}, media="docker")
BUSYBOX = ib.busybox_image(user="app", working_dir="/home/app", stop_signal="SIGTERM")
ZSTD_ONLY = ib.Image([ib.Layer(ib.busybox_entries(), "zstd")], config={"User": "nobody"})


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with running_registry() as reg:
        ib.push_image(reg, "library/busybox", "latest", BUSYBOX)
        ib.push_image(reg, "test/layered", "1", LAYERED)
        ib.push_image(reg, "test/zstd", "1", ZSTD_ONLY)
        other = "arm64" if ib.host_arch() != "arm64" else "amd64"
        foreign = ib.Image([ib.Layer([ib.file("arch", other.encode())])], architecture=other)
        native = ib.Image([ib.Layer([ib.file("arch", b"native")])])
        ib.push_index(reg, "test/multi", "1", [foreign, native], media="docker")
        yield reg


def config_for(reg: Registry, **extra: Any) -> dict[str, Any]:
    return {
        "registries": {
            "docker.io": {"mirrors": [reg.url], "upstream": False},
            reg.host: {"insecure": True},
        },
        **extra,
    }


@pytest.fixture(scope="module")
def crib(registry: Registry) -> Iterator[CribDaemon]:
    with running_crib(**config_for(registry)) as daemon:
        yield daemon


def pull(crib: CribDaemon, image: str, auth: pb.AuthConfig | None = None) -> str:
    request = pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=auth)
    return crib.images().PullImage(request, timeout=120).image_ref


def status(crib: CribDaemon, image: str, verbose: bool = False) -> pb.ImageStatusResponse:
    return crib.images().ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=image), verbose=verbose)
    )


def remove(crib: CribDaemon, image: str) -> None:
    crib.images().RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image)))


def layer_dir(crib: CribDaemon, layer: ib.Layer) -> pathlib.Path:
    return pathlib.Path(crib.root, "images/layers", layer.diff_id.removeprefix("sha256:"), "diff")


def test_pull_short_name_through_mirror(crib: CribDaemon) -> None:
    image_ref = pull(crib, "busybox")
    assert image_ref == BUSYBOX.image_id
    image = status(crib, "busybox").image
    assert image.id == image_ref  # Kubernetes 1.36: image_ref is Image.id
    assert list(image.repo_tags) == ["docker.io/library/busybox:latest"]
    assert list(image.repo_digests) == [f"docker.io/library/busybox@{BUSYBOX.manifest_digest}"]
    assert image.size > 0
    assert image.username == "app"
    assert not image.HasField("uid")
    assert image.spec.image == image.id
    listed = crib.images().ListImages(pb.ListImagesRequest()).images
    assert image in listed
    for name in (image.id, image.id[7:], "docker.io/library/busybox:latest", image.repo_digests[0]):
        assert status(crib, name).image == image


def test_status_verbose_has_config(crib: CribDaemon) -> None:
    pull(crib, "busybox:latest")
    response = status(crib, "busybox", verbose=True)
    info = json.loads(response.info["info"])
    config = info["imageSpec"]["config"]
    assert config["User"] == "app"
    assert config["WorkingDir"] == "/home/app"
    assert config["StopSignal"] == "SIGTERM"
    assert info["imageSpec"]["rootfs"]["diff_ids"] == [x.diff_id for x in BUSYBOX.layers]


def test_status_of_missing_image_is_unset(crib: CribDaemon) -> None:
    response = status(crib, "nosuch/image:1")
    assert not response.HasField("image")


def test_layered_image_unpacked_byte_for_byte(crib: CribDaemon, registry: Registry) -> None:
    image_ref = pull(crib, f"{registry.host}/test/layered:1")
    assert image_ref == LAYERED.image_id
    image = status(crib, image_ref).image
    assert image.uid.value == 1000
    for layer in LAYERED.layers:
        assert actual_tree(layer_dir(crib, layer)) == expected_tree(layer.entries), layer.diff_id


def test_zstd_image(crib: CribDaemon, registry: Registry) -> None:
    image_ref = pull(crib, f"{registry.host}/test/zstd:1")
    assert image_ref == ZSTD_ONLY.image_id
    tree = layer_dir(crib, ZSTD_ONLY.layers[0])
    assert (tree / "bin/busybox").read_bytes() == pathlib.Path("/bin/busybox").read_bytes()
    assert status(crib, image_ref).image.username == "nobody"


def test_manifest_list_picks_this_platform(crib: CribDaemon, registry: Registry) -> None:
    image_ref = pull(crib, f"{registry.host}/test/multi:1")
    image = status(crib, image_ref).image
    assert len(image.repo_digests) == 1
    digest = image.repo_digests[0].split("@")[1]
    layers_dir = pathlib.Path(crib.root, "images/layers")
    arch_files = [p.read_bytes() for p in layers_dir.glob("*/diff/arch")]
    assert b"native" in arch_files
    assert status(crib, f"{registry.host}/test/multi@{digest}").image == image


def test_remove_by_tag_and_missing_is_success(crib: CribDaemon, registry: Registry) -> None:
    ref = f"{registry.host}/test/zstd:1"
    image_ref = pull(crib, ref)
    remove(crib, ref)
    assert not status(crib, image_ref).HasField("image")
    assert not layer_dir(crib, ZSTD_ONLY.layers[0]).exists()
    remove(crib, ref)  # already gone: still success
    remove(crib, "sha256:" + "0" * 64)


def test_invalid_reference_is_invalid_argument(crib: CribDaemon) -> None:
    for bad in ("library/UPPER", "busybox:bad tag", "busybox@sha256:12", ""):
        with pytest.raises(grpc.RpcError) as err:
            pull(crib, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "image" in err.value.details()


def test_not_found_names_reference(crib: CribDaemon, registry: Registry) -> None:
    with pytest.raises(grpc.RpcError) as err:
        pull(crib, f"{registry.host}/test/absent:1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"{registry.host}/test/absent:1" in err.value.details()


def test_image_fs_info(crib: CribDaemon) -> None:
    pull(crib, "busybox")
    info = crib.images().ImageFsInfo(pb.ImageFsInfoRequest())
    (images,) = info.image_filesystems
    assert images.fs_id.mountpoint == os.path.join(crib.root, "images")
    assert images.used_bytes.value > 1_000_000  # busybox alone is ~2 MB
    assert images.inodes_used.value > 10
    assert images.timestamp > 0
    (containers,) = info.container_filesystems
    assert containers.fs_id.mountpoint.startswith(crib.root)


# --- registry behaviour ------------------------------------------------------------------------


def test_basic_auth_registry() -> None:
    with running_registry(users={"alice": "wonderland"}) as reg:
        ib.push_image(reg, "private/app", "1", BUSYBOX, username="alice", password="wonderland")
        with running_crib(**config_for(reg)) as crib:
            name = f"{reg.host}/private/app:1"
            with pytest.raises(grpc.RpcError) as err:
                pull(crib, name)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "username and password" in err.value.details()
            wrong = pb.AuthConfig(username="alice", password="nope")
            with pytest.raises(grpc.RpcError) as err:
                pull(crib, name, wrong)
            assert "denied" in err.value.details()
            good = pb.AuthConfig(username="alice", password="wonderland")
            assert pull(crib, name, good) == BUSYBOX.image_id
            remove(crib, name)
            encoded = base64.b64encode(b"alice:wonderland").decode()
            assert pull(crib, name, pb.AuthConfig(auth=encoded)) == BUSYBOX.image_id


def test_corrupted_blob_is_digest_error_and_nothing_half_written() -> None:
    big = ib.Layer([ib.file("big", ib.random_bytes(2 << 20, 9))], "gzip")
    image = ib.Image([ib.Layer(ib.busybox_entries()), big])
    with running_registry() as reg:
        ib.push_image(reg, "test/corrupt", "1", image)
        path = reg.blob_path(big.digest)
        data = bytearray(pathlib.Path(path).read_bytes())
        data[len(data) // 2] ^= 0xFF
        pathlib.Path(path).write_bytes(bytes(data))
        with running_crib(**config_for(reg)) as crib:
            with pytest.raises(grpc.RpcError) as err:
                pull(crib, f"{reg.host}/test/corrupt:1")
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert big.digest in err.value.details()
            assert "digest" in err.value.details()
            assert crib.images().ListImages(pb.ListImagesRequest()).images == []
            assert_no_leftovers(crib)
            assert not layer_dir(crib, big).exists()


def test_registry_stopped_is_unavailable_after_bounded_retries() -> None:
    with running_registry() as reg:
        ib.push_image(reg, "test/app", "1", BUSYBOX)
        with running_crib(**config_for(reg)) as crib:
            reg.stop()
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                pull(crib, f"{reg.host}/test/app:1")
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "unreachable after 4 attempts" in err.value.details()
            assert reg.host in err.value.details()
            assert time.monotonic() - started < 60  # bounded, not hanging
            reg.restart()
            assert pull(crib, f"{reg.host}/test/app:1") == BUSYBOX.image_id


def test_crash_mid_pull_repairs_on_restart() -> None:
    layers = [ib.Layer([ib.file(f"f{i}", ib.random_bytes(8 << 20, i))], "gzip") for i in range(4)]
    image = ib.Image(layers)
    with running_registry() as reg:
        ib.push_image(reg, "test/big", "1", image)
        with running_crib(**config_for(reg)) as crib:
            name = f"{reg.host}/test/big:1"
            pulling = threading.Thread(target=_pull_ignoring_errors, args=(crib, name))
            pulling.start()
            time.sleep(0.3)  # somewhere in the pull (or after it: either way must hold)
            crib.kill()
            pulling.join()
            crib.start()
            assert_no_leftovers(crib)
            assert pull(crib, name) == image.image_id
            assert_no_leftovers(crib)
            for layer in layers:
                assert layer_dir(crib, layer).is_dir()


def test_restart_keeps_images_and_pinned(registry: Registry) -> None:
    with running_crib(**config_for(registry, pinned_images=["busybox"])) as crib:
        image_ref = pull(crib, "busybox")
        assert status(crib, image_ref).image.pinned
        crib.stop()
        crib.start()
        image = status(crib, "docker.io/library/busybox:latest").image
        assert image.id == image_ref
        assert image.pinned


# --- helpers -----------------------------------------------------------------------------------


def _pull_ignoring_errors(crib: CribDaemon, name: str) -> None:
    try:
        pull(crib, name)
    except grpc.RpcError:
        pass


def assert_no_leftovers(crib: CribDaemon) -> None:
    images = pathlib.Path(crib.root, "images")
    assert list((images / "content/ingest").iterdir()) == []
    leftovers = [p.name for p in (images / "layers").iterdir() if p.name.startswith(".")]
    assert leftovers == []


Tree = dict[str, tuple[Any, ...]]


def expected_tree(entries: tuple[ib.Entry, ...]) -> Tree:
    """What one layer directory must hold for `entries` (overlay form, later entries win)."""
    tree: Tree = {}
    links: dict[str, str] = {}
    for entry in entries:
        head, _, name = entry.name.rpartition("/")
        if name == ".wh..wh..opq":
            kind, *rest = tree[head]
            xattrs = dict(rest[-1])
            xattrs["trusted.overlay.opaque"] = b"y"
            tree[head] = (kind, *rest[:-1], tuple(sorted(xattrs.items())))
            continue
        xattrs = tuple(sorted(entry.xattrs))
        if name.startswith(".wh."):
            path = f"{head}/{name[4:]}" if head else name[4:]
            tree[path] = ("char", 0, entry.uid, entry.gid, os.makedev(0, 0), ())
            continue
        mode = stat.S_IMODE(entry.mode)
        mtime_ns = round(entry.mtime * 1e9)
        if entry.kind == "dir":
            value: tuple[Any, ...] = ("dir", mode, entry.uid, entry.gid, mtime_ns, xattrs)
        elif entry.kind == "file":
            value = ("file", mode, entry.uid, entry.gid, mtime_ns, entry.data, xattrs)
        elif entry.kind == "symlink":
            value = ("symlink", entry.uid, entry.gid, mtime_ns, entry.linkname)
        elif entry.kind == "hardlink":
            links[entry.name] = entry.linkname
            value = tree[entry.linkname]
        else:
            rdev = os.makedev(entry.devmajor, entry.devminor)
            value = (entry.kind, mode, entry.uid, entry.gid, rdev, ())
        tree[entry.name] = value
    return tree


def actual_tree(root: pathlib.Path) -> Tree:
    tree: Tree = {}
    for dir_path, dirs, files in os.walk(root):
        for name in dirs + files:
            path = pathlib.Path(dir_path, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            xattrs: tuple[tuple[str, bytes], ...] = ()
            if not stat.S_ISLNK(st.st_mode):
                xattrs = tuple(sorted((k, os.getxattr(path, k)) for k in os.listxattr(path)))
            if stat.S_ISDIR(st.st_mode):
                tree[rel] = ("dir", mode, st.st_uid, st.st_gid, st.st_mtime_ns, xattrs)
            elif stat.S_ISREG(st.st_mode):
                data = path.read_bytes()
                tree[rel] = ("file", mode, st.st_uid, st.st_gid, st.st_mtime_ns, data, xattrs)
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                tree[rel] = ("symlink", st.st_uid, st.st_gid, st.st_mtime_ns, target)
            else:
                kind = (
                    "char"
                    if stat.S_ISCHR(st.st_mode)
                    else "block"
                    if stat.S_ISBLK(st.st_mode)
                    else "fifo"
                )
                rdev = st.st_rdev if kind != "fifo" else 0
                tree[rel] = (kind, mode, st.st_uid, st.st_gid, rdev, xattrs)
    return tree


def test_tree_helpers_compare_inodes_of_hardlinks(crib: CribDaemon, registry: Registry) -> None:
    pull(crib, f"{registry.host}/test/layered:1")
    lib = layer_dir(crib, LAYER2) / "lib"
    assert (lib / "link").stat().st_ino == (lib / "real").stat().st_ino
