"""cri.specgen.host: HostFacts probed from a fixture /proc and /sys, and the real seams."""

from __future__ import annotations

import os
import pathlib

import pytest

from cri.specgen import SpecInvalidError
from cri.specgen.host import (
    grantable_capabilities,
    kernel_version,
    lookup_devices,
    mount_propagation,
    probe,
    read_seccomp_profile,
)
from cri.specgen.security import CAPABILITIES

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
24 22 0:22 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
30 22 8:2 / /srv rw,relatime - ext4 /dev/sda2 rw
31 30 8:3 / /srv/slave rw,relatime master:7 - ext4 /dev/sda3 rw
32 30 8:3 / /srv/with\\040space rw,relatime shared:8 - ext4 /dev/sda3 rw
33 30 0:40 / /srv/stacked rw,relatime shared:11 - tmpfs tmpfs rw
34 30 0:41 / /srv/stacked rw,relatime - tmpfs tmpfs rw
"""


def write(root: pathlib.Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture
def v2_host(tmp_path: pathlib.Path) -> pathlib.Path:
    # Bounding set: everything up to CAP_CHECKPOINT_RESTORE (40); effective lacks
    # CAP_SYS_RESOURCE (24), as on crib's test machines.
    write(
        tmp_path,
        "/proc/self/status",
        "Name:\tx\nCapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n",
    )
    write(tmp_path, "/proc/sys/kernel/cap_last_cap", "40\n")
    write(tmp_path, "/proc/self/oom_score_adj", "-500\n")
    write(tmp_path, "/proc/self/mountinfo", MOUNTINFO)
    write(tmp_path, "/proc/self/cgroup", "0::/crib.slice/daemon\n")
    write(tmp_path, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
    write(tmp_path, "/sys/fs/cgroup/crib.slice/daemon/memory.swap.max", "max\n")
    write(tmp_path, "/sys/module/apparmor/parameters/enabled", "N\n")
    return tmp_path


def test_probe_cgroup_v2_fixture(v2_host: pathlib.Path) -> None:
    facts = probe(str(v2_host), hostname="node-7", machine="x86_64", release="6.1.0-18-amd64")
    assert facts.arch == "amd64"
    assert facts.kernel_version == (6, 1)
    assert facts.cgroup_v2
    assert facts.hugetlb_controller
    assert facts.swap_controller
    assert facts.recursive_read_only
    assert not facts.apparmor_enabled
    assert facts.capabilities == CAPABILITIES
    assert facts.min_oom_score_adj == -500
    assert facts.hostname == "node-7"
    assert facts.cgroup_mount_options == ("nsdelegate", "memory_recursiveprot")


def test_probe_cgroup_v1_fixture(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "/proc/self/status", "CapEff:\t000001ffffffffff\nCapBnd:\t00000000a80425fb\n")
    write(tmp_path, "/proc/sys/kernel/cap_last_cap", "40\n")
    (tmp_path / "sys/fs/cgroup/hugetlb").mkdir(parents=True)
    write(tmp_path, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path, "/sys/module/apparmor/parameters/enabled", "Y\n")
    facts = probe(str(tmp_path), runtime_supports_rro=False, machine="aarch64", release="5.10.0")
    assert facts.arch == "arm64"
    assert not facts.cgroup_v2
    assert facts.hugetlb_controller
    assert facts.swap_controller
    assert not facts.recursive_read_only
    assert facts.apparmor_enabled
    assert facts.min_oom_score_adj is None
    assert facts.cgroup_mount_options == ()
    # 0xa80425fb is Docker's default bounding set.
    assert "CAP_SYS_ADMIN" not in facts.capabilities
    assert "CAP_CHOWN" in facts.capabilities


def test_rro_needs_linux_5_12(v2_host: pathlib.Path) -> None:
    assert not probe(str(v2_host), release="5.11.0").recursive_read_only
    assert probe(str(v2_host), release="5.12.1").recursive_read_only


def test_grantable_capabilities_respect_cap_last_cap(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "/proc/self/status", "CapBnd:\t000001ffffffffff\n")
    write(tmp_path, "/proc/sys/kernel/cap_last_cap", "37\n")
    assert grantable_capabilities(str(tmp_path))[-1] == "CAP_AUDIT_READ"


@pytest.mark.parametrize(
    ("release", "expected"), [("6.1.0-18-amd64", (6, 1)), ("5.15", (5, 15)), ("weird", (0, 0))]
)
def test_kernel_version(release: str, expected: tuple[int, int]) -> None:
    assert kernel_version(release) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "shared"),
        ("/home/user", "shared"),
        ("/srv/data", "private"),
        ("/srv/slave/x", "slave"),
        ("/srv/with space/x", "shared"),
        ("/srv/slaveish", "private"),
        ("/srv/stacked/x", "private"),  # the mount on top decides
    ],
)
def test_mount_propagation_from_mountinfo(v2_host: pathlib.Path, path: str, expected: str) -> None:
    assert mount_propagation(path, root=str(v2_host)) == expected


def test_lookup_devices_real_dev_null() -> None:
    [null] = lookup_devices("/dev/null")
    assert (null.path, null.type, null.major, null.minor) == ("/dev/null", "c", 1, 3)


def test_lookup_devices_follows_a_symlink_but_keeps_the_requested_path(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "disk").symlink_to("/dev/null")
    [device] = lookup_devices(str(tmp_path / "disk"))
    assert (device.path, device.major, device.minor) == (str(tmp_path / "disk"), 1, 3)


def test_lookup_devices_symlinked_directory_keeps_paths_below_the_request(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "devices").symlink_to("/dev")
    found = {d.path: d for d in lookup_devices(str(tmp_path / "devices"))}
    null = found[str(tmp_path / "devices" / "null")]
    assert (null.major, null.minor) == (1, 3)
    assert not any("/pts/" in path for path in found)


def test_lookup_devices_errors(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecInvalidError, match="is not a device node"):
        lookup_devices(str(tmp_path / "file"))
    with pytest.raises(SpecInvalidError, match="does not exist"):
        lookup_devices(str(tmp_path / "missing"))


def test_lookup_devices_directory_skips_fifos_and_files(tmp_path: pathlib.Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("x")
    (tmp_path / "pts").mkdir()
    (tmp_path / "null").symlink_to("/dev/null")  # a symlink in a directory is not followed
    assert lookup_devices(str(tmp_path)) == []


def test_read_seccomp_profile_reads_one_byte_past_the_limit(tmp_path: pathlib.Path) -> None:
    from cri.specgen.seccomp import MAX_PROFILE_BYTES

    (tmp_path / "big.json").write_bytes(b" " * (MAX_PROFILE_BYTES + 10))
    assert len(read_seccomp_profile(str(tmp_path / "big.json"))) == MAX_PROFILE_BYTES + 1
    with pytest.raises(FileNotFoundError):
        read_seccomp_profile(str(tmp_path / "missing.json"))


def test_probe_of_this_machine_is_usable() -> None:
    facts = probe()
    assert facts.kernel_version >= (3, 0)
    assert facts.capabilities
    assert facts.capabilities[0] == "CAP_CHOWN"
    assert facts.mount_propagation is not None
    assert facts.mount_propagation("/") in {
        "shared",
        "slave",
        "private",
        "unbindable",
    }
