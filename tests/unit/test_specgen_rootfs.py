"""Rooted reads of an image's user database, and image volume sub paths.

Every image here is hostile in one way: symlinks that point out of the rootfs (absolute and
through ".."), symlink loops, FIFOs, directories and oversized files in place of
/etc/passwd. None may make crib read a host file, hang, or read without bound.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from cri.specgen import (
    ImageUserFileError,
    SpecInvalidError,
    read_user_database,
    resolve_image_sub_path,
    resolve_in_root,
)
from cri.specgen.rootfs import read_user_file

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nextra:x:50000:app\n"


@pytest.fixture
def rootfs(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    return root


@pytest.fixture
def host_secret(tmp_path: pathlib.Path) -> pathlib.Path:
    secret = tmp_path / "host-passwd"
    secret.write_text("hostroot:x:0:0::/:/bin/sh\nhostuser:x:4242:4242::/:/bin/sh\n")
    return secret


def test_reads_passwd_and_group(rootfs: pathlib.Path) -> None:
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    db = read_user_database(str(rootfs))
    assert [u.name for u in db.passwd] == ["root", "app"]
    assert db.groups_of("app") == [50000]


def test_missing_files_give_an_empty_database(rootfs: pathlib.Path) -> None:
    db = read_user_database(str(rootfs))
    assert db.passwd == ()
    assert db.group == ()


def test_missing_etc_gives_an_empty_database(tmp_path: pathlib.Path) -> None:
    db = read_user_database(str(tmp_path))
    assert db.passwd == ()


def test_relative_symlink_inside_the_image_is_followed(rootfs: pathlib.Path) -> None:
    (rootfs / "usr/share").mkdir(parents=True)
    (rootfs / "usr/share/passwd").write_text(PASSWD)
    (rootfs / "etc/passwd").symlink_to("../usr/share/passwd")
    assert [u.name for u in read_user_database(str(rootfs)).passwd] == ["root", "app"]


def test_absolute_symlink_resolves_inside_the_image(
    rootfs: pathlib.Path, host_secret: pathlib.Path
) -> None:
    # Pointing at the host file by its absolute path lands inside the image instead.
    (rootfs / "etc/passwd").symlink_to(host_secret)
    inside = rootfs / str(host_secret).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text(PASSWD)
    assert [u.name for u in read_user_database(str(rootfs)).passwd] == ["root", "app"]


def test_absolute_symlink_to_a_host_file_is_not_read(
    rootfs: pathlib.Path, host_secret: pathlib.Path
) -> None:
    (rootfs / "etc/passwd").symlink_to(host_secret)
    assert read_user_database(str(rootfs)).passwd == ()


def test_dotdot_symlink_cannot_climb_out(rootfs: pathlib.Path, host_secret: pathlib.Path) -> None:
    # ../../host-passwd from /etc stops at the image root: /host-passwd inside the image.
    (rootfs / "etc/passwd").symlink_to("../../../../../" + host_secret.name)
    assert read_user_database(str(rootfs)).passwd == ()
    (rootfs / host_secret.name).write_text(PASSWD)
    assert [u.name for u in read_user_database(str(rootfs)).passwd] == ["root", "app"]


def test_symlinked_etc_directory_cannot_escape(
    rootfs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text("hostroot:x:0:0::/:/bin/sh\n")
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to(host_etc)
    assert read_user_database(str(rootfs)).passwd == ()


def test_symlink_loop_is_an_error_not_a_hang(rootfs: pathlib.Path) -> None:
    (rootfs / "etc/passwd").symlink_to("passwd2")
    (rootfs / "etc/passwd2").symlink_to("passwd")
    with pytest.raises(ImageUserFileError, match="cannot resolve /etc/passwd"):
        read_user_database(str(rootfs))


def test_fifo_is_refused_without_blocking(rootfs: pathlib.Path) -> None:
    os.mkfifo(rootfs / "etc/passwd")
    with pytest.raises(ImageUserFileError, match="not a regular file"):
        read_user_database(str(rootfs))


def test_directory_is_refused(rootfs: pathlib.Path) -> None:
    (rootfs / "etc/group").mkdir()
    with pytest.raises(ImageUserFileError, match="/etc/group in the image is not a regular file"):
        read_user_database(str(rootfs))


def test_oversized_file_is_refused(rootfs: pathlib.Path) -> None:
    (rootfs / "etc/passwd").write_text(PASSWD * 100)
    with pytest.raises(ImageUserFileError, match="larger than 64 bytes"):
        read_user_file(str(rootfs), "etc/passwd", limit_bytes=64)
    assert read_user_file(str(rootfs), "etc/passwd", limit_bytes=len(PASSWD) * 100) is not None


def test_sparse_huge_file_is_refused_after_the_limit(rootfs: pathlib.Path) -> None:
    with open(rootfs / "etc/passwd", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of zeros, sparse: reading it all would be the attack
    with pytest.raises(ImageUserFileError, match="larger than"):
        read_user_database(str(rootfs))


def test_resolve_in_root_returns_the_real_host_path(rootfs: pathlib.Path) -> None:
    (rootfs / "data/real").mkdir(parents=True)
    (rootfs / "link").symlink_to("/data/real")
    assert resolve_in_root(str(rootfs), "link") == str((rootfs / "data/real").resolve())
    assert resolve_in_root(str(rootfs), "/") == str(rootfs.resolve())


def test_image_sub_path(rootfs: pathlib.Path) -> None:
    (rootfs / "models/v1").mkdir(parents=True)
    (rootfs / "latest").symlink_to("models/v1")
    expected = str((rootfs / "models/v1").resolve())
    assert resolve_image_sub_path(str(rootfs), "latest", "img") == expected
    assert resolve_image_sub_path(str(rootfs), "models/v1", "img") == expected
    assert resolve_image_sub_path(str(rootfs), "", "img") == str(rootfs.resolve())


def test_image_sub_path_errors(rootfs: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (rootfs / "file").write_text("x")
    (rootfs / "escape").symlink_to("../../..")
    with pytest.raises(SpecInvalidError, match="sub path 'nope' does not exist in image volume"):
        resolve_image_sub_path(str(rootfs), "nope", "registry/img:1")
    with pytest.raises(SpecInvalidError, match="is not a directory"):
        resolve_image_sub_path(str(rootfs), "file", "img")
    with pytest.raises(SpecInvalidError, match=r"must be relative without '\.\.'"):
        resolve_image_sub_path(str(rootfs), "../x", "img")
    with pytest.raises(SpecInvalidError, match="must be relative"):
        resolve_image_sub_path(str(rootfs), "/etc", "img")
    # A symlink climbing out resolves to the image root, never above it.
    assert resolve_image_sub_path(str(rootfs), "escape", "img") == str(rootfs.resolve())
