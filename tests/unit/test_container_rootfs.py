"""Directories created inside a container's rootfs stay inside it, whatever the image's
symlinks say; missing host bind sources become directories."""

from __future__ import annotations

import os
import pathlib

import pytest

from cri.containers.rootfs import ensure_host_dir, mkdir_in_root
from cri.specgen import RootfsDir, SpecInvalidError


def test_nested_and_existing(tmp_path: pathlib.Path) -> None:
    mkdir_in_root(str(tmp_path), RootfsDir("/a/b/c"))
    assert (tmp_path / "a" / "b" / "c").is_dir()
    mkdir_in_root(str(tmp_path), RootfsDir("/a/b/c"))  # again: nothing to do
    assert oct((tmp_path / "a" / "b" / "c").stat().st_mode & 0o777) == oct(0o755 & ~_umask())


def test_absolute_symlink_resolves_inside_the_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    # an image symlink pointing at an absolute host-looking path
    (root / "escape").symlink_to(str(outside))
    (root / "up").symlink_to("../../../../real")
    with pytest.raises(SpecInvalidError, match="symlink to a missing path"):
        mkdir_in_root(str(root), RootfsDir("/escape/made"))
    assert list(outside.iterdir()) == []
    mkdir_in_root(str(root), RootfsDir("/up/made"))
    assert (root / "real" / "made").is_dir()


def test_a_file_in_the_way(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecInvalidError, match="/file is not a directory"):
        mkdir_in_root(str(tmp_path), RootfsDir("/file/sub"))


def test_dot_dot_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SpecInvalidError, match=r"'\.\.'"):
        mkdir_in_root(str(tmp_path), RootfsDir("/a/../../b"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_owner_of_the_last_component(tmp_path: pathlib.Path) -> None:
    mkdir_in_root(str(tmp_path), RootfsDir("/home/app", uid=1000, gid=1001))
    st = (tmp_path / "home" / "app").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert (tmp_path / "home").stat().st_uid == 0


def test_ensure_host_dir(tmp_path: pathlib.Path) -> None:
    ensure_host_dir(str(tmp_path / "x" / "y"))
    assert (tmp_path / "x" / "y").is_dir()
    (tmp_path / "f").write_text("x")
    ensure_host_dir(str(tmp_path / "f"))  # an existing file is left alone
    assert (tmp_path / "f").is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    ensure_host_dir(str(tmp_path / "dangling"))
    assert not (tmp_path / "nowhere").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
