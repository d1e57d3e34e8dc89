"""Layer unpack: overlay form, metadata, compression, and hostile layers.

Needs root (owners, device nodes, trusted.* xattrs): marked `root`.
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib
import stat
import tarfile

import pytest
import zstandard

from image.errors import DigestMismatchError, LayerFormatError, UnsafeLayerError
from image.unpack import resolve_deferred_links, unpack_layer
from tests import imagebuild as ib

pytestmark = pytest.mark.root


def unpack(tmp_path: pathlib.Path, layer: ib.Layer, diff_id: str | None = None) -> pathlib.Path:
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob)
    dest = tmp_path / "layer" / "diff"
    dest.mkdir(parents=True)
    stats = unpack_layer(str(blob), str(dest), diff_id or layer.diff_id, "layer x")
    assert stats.diff_id == layer.diff_id
    return dest


def test_files_dirs_links_metadata(tmp_path: pathlib.Path) -> None:
    layer = ib.Layer(
        [
            ib.directory("etc", mode=0o750, uid=1, gid=2, mtime=1_600_000_000),
            ib.file("etc/conf", b"hello\n", mode=0o640, uid=1000, gid=1001, mtime=1_500_000_000.5),
            ib.file("bin/su", b"#!x", mode=0o4755),  # parent created implicitly
            ib.symlink("etc/abs", "/etc/passwd", uid=7, gid=8),
            ib.symlink("etc/rel", "../bin/su"),
            ib.hardlink("etc/conf2", "etc/conf"),
            ib.device("dev/null", "char", 1, 3),
            ib.device("dev/sda", "block", 8, 0, mode=0o660),
            ib.device("run/fifo", "fifo", 0, 0, mode=0o600),
            ib.file("etc/cap", b"x", xattrs=(("user.test", b"v\x00\xff"),)),
            ib.file("etc/overlay", b"x", xattrs=(("trusted.overlay.redirect", b"/etc"),)),
        ],
        compression="gzip",
    )
    dest = unpack(tmp_path, layer)
    etc = (dest / "etc").lstat()
    assert stat.S_IMODE(etc.st_mode) == 0o750
    assert (etc.st_uid, etc.st_gid) == (1, 2)
    assert etc.st_mtime == 1_600_000_000  # set after its children were written
    conf = (dest / "etc/conf").lstat()
    assert (dest / "etc/conf").read_bytes() == b"hello\n"
    assert stat.S_IMODE(conf.st_mode) == 0o640
    assert (conf.st_uid, conf.st_gid) == (1000, 1001)
    assert conf.st_mtime_ns == 1_500_000_000_500_000_000
    assert stat.S_IMODE((dest / "bin/su").lstat().st_mode) == 0o4755
    assert os.readlink(dest / "etc/abs") == "/etc/passwd"
    assert (dest / "etc/abs").lstat().st_uid == 7
    assert os.readlink(dest / "etc/rel") == "../bin/su"
    assert (dest / "etc/conf2").lstat().st_ino == conf.st_ino
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode)
    assert null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    sda = (dest / "dev/sda").lstat()
    assert stat.S_ISBLK(sda.st_mode)
    assert sda.st_rdev == os.makedev(8, 0)
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert os.getxattr(dest / "etc/cap", "user.test") == b"v\x00\xff"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "etc/overlay")


def test_whiteouts_become_overlay_form(tmp_path: pathlib.Path) -> None:
    layer = ib.Layer(
        [
            ib.directory("data"),
            ib.whiteout("data/gone"),
            ib.directory("keep"),
            ib.opaque("keep"),
            ib.file("keep/new", b"n"),
            ib.file("data/.wh..wh.plnk", b""),  # aufs metadata: skipped
            ib.whiteout("olddir"),
            ib.directory("olddir"),  # dir over this layer's whiteout: hides the lower dir
        ],
        compression="none",
    )
    dest = unpack(tmp_path, layer)
    gone = (dest / "data/gone").lstat()
    assert stat.S_ISCHR(gone.st_mode)
    assert gone.st_rdev == 0
    assert not (dest / "data/.wh.gone").exists()
    assert os.getxattr(dest / "keep", "trusted.overlay.opaque") == b"y"
    assert not (dest / "keep/.wh..wh..opq").exists()
    assert (dest / "keep/new").read_bytes() == b"n"
    assert not (dest / "data/.wh..wh.plnk").exists()
    assert os.getxattr(dest / "olddir", "trusted.overlay.opaque") == b"y"


def test_entry_replacement_rules(tmp_path: pathlib.Path) -> None:
    layer = ib.Layer(
        [
            ib.file("a", b"file"),
            ib.directory("a"),  # file replaced by a directory
            ib.file("a/x", b"x"),
            ib.directory("a", mode=0o700),  # existing dir kept, attributes updated
            ib.symlink("b", "a"),
            ib.file("b", b"plain"),  # symlink replaced, not followed
            ib.directory("c"),
            ib.file("c/deep", b"d"),
            ib.symlink("c", "/tmp"),  # dir replaced by symlink
        ]
    )
    dest = unpack(tmp_path, layer)
    assert (dest / "a/x").read_bytes() == b"x"
    assert stat.S_IMODE((dest / "a").lstat().st_mode) == 0o700
    assert (dest / "b").read_bytes() == b"plain"
    assert (dest / "a/x").read_bytes() == b"x"
    assert os.readlink(dest / "c") == "/tmp"


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_compressions(tmp_path: pathlib.Path, compression: str) -> None:
    layer = ib.Layer([ib.file("big", ib.random_bytes(3 << 20, 1))], compression)
    dest = unpack(tmp_path, layer)
    assert (dest / "big").read_bytes() == ib.random_bytes(3 << 20, 1)


def test_multi_member_gzip_and_padding(tmp_path: pathlib.Path) -> None:
    tar = ib.tar_bytes([ib.file("one", b"1" * 5000), ib.file("two", b"2")])
    blob = gzip.compress(tar[:3000]) + gzip.compress(tar[3000:]) + b"\0" * 1024
    layer = ib.Layer(raw_tar=tar, compression="none")
    (tmp_path / "blob").write_bytes(blob)
    dest = tmp_path / "d"
    dest.mkdir()
    unpack_layer(str(tmp_path / "blob"), str(dest), layer.diff_id, "x")
    assert (dest / "two").read_bytes() == b"2"


def test_multi_frame_zstd(tmp_path: pathlib.Path) -> None:
    tar = ib.tar_bytes([ib.file("one", b"1" * 5000), ib.file("two", b"2")])
    cctx = zstandard.ZstdCompressor()
    (tmp_path / "blob").write_bytes(cctx.compress(tar[:3000]) + cctx.compress(tar[3000:]))
    dest = tmp_path / "d"
    dest.mkdir()
    unpack_layer(str(tmp_path / "blob"), str(dest), ib.sha256(tar), "x")
    assert (dest / "two").read_bytes() == b"2"


def test_diff_id_mismatch(tmp_path: pathlib.Path) -> None:
    layer = ib.Layer([ib.file("a", b"a")])
    with pytest.raises(DigestMismatchError, match="config says sha256:0000"):
        unpack(tmp_path, layer, "sha256:" + "0" * 64)


def test_corrupt_and_truncated(tmp_path: pathlib.Path) -> None:
    layer = ib.Layer([ib.file("a", ib.random_bytes(100_000, 2))], "gzip")
    (tmp_path / "blob").write_bytes(layer.blob[: len(layer.blob) // 2])
    (tmp_path / "d").mkdir()
    with pytest.raises(LayerFormatError, match="truncated"):
        unpack_layer(str(tmp_path / "blob"), str(tmp_path / "d"), layer.diff_id, "x")
    bad = bytearray(layer.blob)
    bad[100:200] = b"\xff" * 100
    (tmp_path / "blob").write_bytes(bytes(bad))
    with pytest.raises(LayerFormatError):
        unpack_layer(str(tmp_path / "blob"), str(tmp_path / "d"), layer.diff_id, "x")


def test_deferred_hardlink_copied_from_lower(tmp_path: pathlib.Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "bin").mkdir()
    (lower / "bin/tool").write_bytes(b"tool")
    os.chmod(lower / "bin/tool", 0o751)
    layer = ib.Layer([ib.hardlink("usr/t1", "bin/tool"), ib.hardlink("usr/t2", "bin/tool")])
    (tmp_path / "blob").write_bytes(layer.blob)
    dest = tmp_path / "d"
    dest.mkdir()
    stats = unpack_layer(str(tmp_path / "blob"), str(dest), layer.diff_id, "x")
    assert stats.deferred_links == [("usr/t1", "bin/tool"), ("usr/t2", "bin/tool")]
    resolve_deferred_links(str(dest), stats.deferred_links, [str(lower)], "x")
    assert (dest / "usr/t1").read_bytes() == b"tool"
    assert stat.S_IMODE((dest / "usr/t1").stat().st_mode) == 0o751
    assert (dest / "usr/t1").stat().st_ino == (dest / "usr/t2").stat().st_ino
    with pytest.raises(LayerFormatError, match="no layer below"):
        resolve_deferred_links(str(dest), [("x", "nope")], [str(lower)], "x")


# --- hostile layers ----------------------------------------------------------------------------


def raw_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar whose names are written as given (tarfile would not let imagebuild do this)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type = kind
    t.linkname = linkname
    t.mode = 0o644 if kind != tarfile.DIRTYPE else 0o755
    return t


def hostile(case: str, out: str) -> bytes:
    """The hostile tar `case`; `out` is the absolute path of a directory outside the layer,
    reachable from the layer root as ../../OUTSIDE."""
    rel = "../../OUTSIDE"
    cases = {
        "absolute path": lambda: raw_tar((info(f"{out}/evil"), b"evil")),
        "dot-dot": lambda: raw_tar((info(f"{rel}/evil"), b"evil")),
        "dot-dot inside": lambda: raw_tar((info(f"a/../{rel}/evil"), b"evil")),
        "symlink parent absolute": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, out), None), (info("link/evil"), b"evil")
        ),
        "symlink parent relative": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, rel), None), (info("link/evil"), b"evil")
        ),
        "symlink swapped for dir": lambda: raw_tar(
            (info("d", tarfile.DIRTYPE), None),
            (info("d/keep"), b"k"),
            (info("d", tarfile.SYMTYPE, out), None),
            (info("d/evil"), b"evil"),
        ),
        "symlink parent deep": lambda: raw_tar(
            (info("a", tarfile.DIRTYPE), None),
            (info("a/b", tarfile.SYMTYPE, out), None),
            (info("a/b/c/evil"), b"evil"),
        ),
        "symlink then file over target": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, f"{out}/target"), None),
            (info("link/../target"), b"evil"),
        ),
        "hardlink outside": lambda: raw_tar((info("evil", tarfile.LNKTYPE, f"{rel}/target"), None)),
        "hardlink absolute": lambda: raw_tar(
            (info("evil", tarfile.LNKTYPE, f"{out}/target"), None)
        ),
        "hardlink through symlink": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, out), None),
            (info("evil", tarfile.LNKTYPE, "link/target"), None),
        ),
        "hardlink to dir": lambda: raw_tar(
            (info("d", tarfile.DIRTYPE), None), (info("evil", tarfile.LNKTYPE, "d"), None)
        ),
        "device through symlink": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, out), None), (info("link/sda", tarfile.BLKTYPE), None)
        ),
        "whiteout through symlink": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, out), None), (info("link/.wh.target"), b"")
        ),
        "opaque through symlink": lambda: raw_tar(
            (info("link", tarfile.SYMTYPE, out), None), (info("link/.wh..wh..opq"), b"")
        ),
        "bare whiteout": lambda: raw_tar((info(".wh."), b"")),
        "file under a file": lambda: raw_tar((info("f"), b"x"), (info("f/evil"), b"evil")),
    }
    return cases[case]()


HOSTILE = [
    "absolute path", "dot-dot", "dot-dot inside", "symlink parent absolute",
    "symlink parent relative", "symlink swapped for dir", "symlink parent deep",
    "symlink then file over target", "hardlink outside", "hardlink absolute",
    "hardlink through symlink", "hardlink to dir", "device through symlink",
    "whiteout through symlink", "opaque through symlink", "bare whiteout", "file under a file",
]  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_layer_refused_and_nothing_written_outside(
    tmp_path: pathlib.Path, case: str
) -> None:
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "target").write_bytes(b"precious")
    os.chmod(outside / "target", 0o600)
    before = _snapshot(tmp_path)
    layer = ib.Layer(raw_tar=hostile(case, str(outside)), compression="gzip")
    with pytest.raises((UnsafeLayerError, LayerFormatError)) as err:
        unpack(tmp_path, layer)
    assert "layer x: entry" in str(err.value)
    after = {k: v for k, v in _snapshot(tmp_path).items() if "/layer/" not in k}
    after.pop(str(tmp_path / "layer"), None)
    after.pop(str(tmp_path / "blob"), None)
    assert after == before


def _snapshot(path: pathlib.Path) -> dict[str, tuple[int, int, bytes]]:
    result = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        result[str(p)] = (st.st_mode, st.st_nlink, p.read_bytes() if p.is_file() else b"")
    return result
