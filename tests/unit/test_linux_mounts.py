"""The root filesystem plan, checked through describe() without root."""

from __future__ import annotations

import os
import pathlib

import pytest

from sandbox.linux import mounts, syscalls
from tests.rootfs import base_spec

CGROUPS = {"memory": "/sys/fs/cgroup/memory/c1", "cpu": "/sys/fs/cgroup/cpu/c1"}


def test_runc_spec_plan_in_order() -> None:
    plan = mounts.rootfs_plan(base_spec(), "/b/rootfs", cgroup_dirs=CGROUPS)
    assert mounts.describe(plan) == [
        "propagation rec,slave on /",
        "propagation private on the mount holding /b/rootfs",
        "mount /b/rootfs on /b/rootfs type bind (bind,rec)",
        "mount proc on /proc type proc (-)",
        "mount tmpfs on /dev type tmpfs (nosuid,strictatime) data=mode=755,size=65536k",
        "mount devpts on /dev/pts type devpts (nosuid,noexec)"
        " data=newinstance,ptmxmode=0666,mode=0620,gid=5",
        "mount shm on /dev/shm type tmpfs (nosuid,nodev,noexec) data=mode=1777,size=65536k",
        "mount mqueue on /dev/mqueue type mqueue (nosuid,nodev,noexec)",
        "mount sysfs on /sys type sysfs (ro,nosuid,nodev,noexec)",
        "mount cgroup on /sys/fs/cgroup as tmpfs with cpu,memory (ro,nosuid,nodev,noexec,relatime)",
        "mknod devices /dev/null(c 1:3), /dev/zero(c 1:5), /dev/full(c 1:7),"
        " /dev/random(c 1:8), /dev/urandom(c 1:9), /dev/tty(c 5:0)",
        "links /dev/fd -> /proc/self/fd, /dev/stdin -> /proc/self/fd/0,"
        " /dev/stdout -> /proc/self/fd/1, /dev/stderr -> /proc/self/fd/2, /dev/ptmx -> pts/ptmx",
        "pivot_root to /b/rootfs",
        "remount ro /",
    ]
    assert [op.step for op in plan][3] == "mount /proc"


def test_paths_plan_readonly_then_masked() -> None:
    lines = mounts.describe(mounts.paths_plan(base_spec()))
    assert lines[0] == "bind and remount ro /proc/bus"
    assert lines[5] == "mask /proc/acpi"
    assert len(lines) == 15


def test_no_pivot_writable_root_user_namespace_and_kcore() -> None:
    spec = base_spec()
    spec["root"]["readonly"] = False
    spec["linux"]["rootfsPropagation"] = "rprivate"
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    plan = mounts.describe(
        mounts.rootfs_plan(
            spec,
            "/r",
            no_pivot=True,
            in_new_userns=True,
            host_has_kcore=True,
            cgroup_unified=True,
            cgroup_dirs={"": "/sys/fs/cgroup/c1"},
        )
    )
    assert plan[0] == "propagation rec,private on /"
    assert plan[-1] == "move /r to / and chroot"
    assert any(line.startswith("bind devices") and "/dev/fuse(c 10:229)" in line for line in plan)
    assert any("/dev/core -> /proc/kcore" in line for line in plan)
    assert "mount cgroup on /sys/fs/cgroup as cgroup2 (ro,nosuid,nodev,noexec,relatime)" in plan


def test_bind_mount_options_and_propagation() -> None:
    spec = base_spec()
    spec["mounts"] = [
        {
            "destination": "/data",
            "type": "bind",
            "source": "/srv/data",
            "options": ["rbind", "ro", "nosuid", "rshared", "rro"],
        },
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["rw", "noexec", "size=1m", "private"],
        },
    ]
    plan = mounts.describe(mounts.rootfs_plan(spec, "/r"))
    assert (
        "mount /srv/data on /data type bind (ro,nosuid,bind,rec) propagation=rec,shared +rro"
        in plan
    )
    assert "mount tmpfs on /tmp type tmpfs (noexec) data=size=1m propagation=private" in plan


def test_mount_options_table() -> None:
    options = mounts.MountOptions(["ro", "rw", "nodev", "dev", "mode=755", "rslave", "rro"])
    assert options.flags & syscalls.MS_RDONLY == 0
    assert options.flags & syscalls.MS_NODEV == 0
    assert options.data == "mode=755"
    assert options.propagation == [syscalls.MS_SLAVE | syscalls.MS_REC]
    assert options.extras == ["rro"]


def test_resolve_in_root_follows_symlinks_inside_the_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "rootfs"
    (root / "real" / "run").mkdir(parents=True)
    os.symlink("/real/run", root / "run")
    os.symlink("../../../../..", root / "escape")
    os.symlink("/etc", root / "abs")
    assert mounts.resolve_in_root(str(root), "/run/x") == str(root / "real" / "run" / "x")
    assert mounts.resolve_in_root(str(root), "/escape/etc/passwd") == str(root / "etc" / "passwd")
    assert mounts.resolve_in_root(str(root), "/abs/hosts") == str(root / "etc" / "hosts")
    assert mounts.resolve_in_root(str(root), "/../../x") == str(root / "x")


def test_symlink_loop_is_an_error(tmp_path: pathlib.Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError, match="too many levels"):
        mounts.resolve_in_root(str(tmp_path), "/a")


def test_mount_point_of_reads_mountinfo(tmp_path: pathlib.Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 0:5 / /var/lib rw - tmpfs tmpfs rw\n"
        "3 1 0:6 / /var/lib/crib\\040x rw - tmpfs tmpfs rw\n"
    )
    assert mounts.mount_point_of("/var/lib/crib x/b", str(info)) == "/var/lib/crib x"
    assert mounts.mount_point_of("/var/lib2", str(info)) == "/"
