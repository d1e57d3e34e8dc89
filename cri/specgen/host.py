"""The real host side of spec generation: probing `HostFacts` and the seams it carries.

This is the only module of `cri.specgen` that looks at the host (/proc, /sys, /dev). It
is read-only, and every path is taken below `root` so tests can point it at a fixture tree.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
import stat

from cri.specgen.errors import SpecInvalidError
from cri.specgen.inputs import HostDevice, HostFacts
from cri.specgen.seccomp import MAX_PROFILE_BYTES
from cri.specgen.security import CAPABILITIES

# platform.machine() -> the native architecture names seccomp profiles use.
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "s390x": "s390x",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
    "mips64": "mips64",
}
# Directories below /dev that hold no devices of their own (containerd's list, plus
# runc#2093's .udev and LXD's helpers).
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
# mount_setattr(2) with AT_RECURSIVE arrived in Linux 5.12.
RRO_MIN_KERNEL = (5, 12)
CAP_SYS_RESOURCE = 24


def _path(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(root: str, path: str) -> str | None:
    try:
        with open(_path(root, path)) as f:
            return f.read()
    except OSError:
        return None


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) from a uname release such as "6.1.0-18-amd64"."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _status_mask(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1].strip(), 16)
    return 0


def grantable_capabilities(root: str = "/") -> tuple[str, ...]:
    """Capabilities in this process's bounding set that the kernel knows, by number."""
    status = _read(root, "/proc/self/status") or ""
    bounding = _status_mask(status, "CapBnd")
    last_text = (_read(root, "/proc/sys/kernel/cap_last_cap") or "").strip()
    last = int(last_text) if last_text.isdigit() else len(CAPABILITIES) - 1
    return tuple(
        name
        for number, name in enumerate(CAPABILITIES)
        if number <= last and bounding >> number & 1
    )


def _unescape_mountinfo(field: str) -> str:
    # proc(5): mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo(root: str) -> list[tuple[str, list[str], str, str]]:
    """(mount point, optional fields, fstype, super options) per line of mountinfo."""
    text = _read(root, "/proc/self/mountinfo") or ""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 6 or len(fields) < dash + 4:
            continue
        entries.append(
            (_unescape_mountinfo(fields[4]), fields[6:dash], fields[dash + 1], fields[dash + 3])
        )
    return entries


def mount_propagation(path: str, root: str = "/") -> str:
    """Propagation of the mount holding `path`: "shared", "slave", "private" or "unbindable"."""
    real = os.path.realpath(path)
    best: tuple[int, list[str]] | None = None
    for mount_point, optional, _, _ in _mountinfo(root):
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        # Later lines are mounted on top of earlier ones at the same point: >= keeps the last.
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), optional)
    if best is None:
        return "private"
    tags = [tag.split(":")[0] for tag in best[1]]
    if "shared" in tags:
        return "shared"
    if "master" in tags:
        return "slave"
    if "unbindable" in tags:
        return "unbindable"
    return "private"


def _cgroup2_options(root: str) -> tuple[str, ...]:
    for mount_point, _, fstype, super_options in _mountinfo(root):
        if mount_point == "/sys/fs/cgroup" and fstype == "cgroup2":
            return tuple(
                o for o in super_options.split(",") if o in ("nsdelegate", "memory_recursiveprot")
            )
    return ()


def _self_cgroup_v2(root: str) -> str:
    for line in (_read(root, "/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def device_from_path(path: str) -> HostDevice | None:
    """The device node at `path` (not following a final symlink); None if it is not one."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return HostDevice(
        path=path,
        type=kind,
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
    )


def _devices_below(directory: str) -> list[HostDevice]:
    found: list[HostDevice] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except PermissionError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DEV_DIRS:
                found.extend(_devices_below(entry.path))
            continue
        if entry.name == "console":
            continue
        try:
            device = device_from_path(entry.path)
        except (FileNotFoundError, PermissionError):
            continue
        # FIFOs below a directory are not devices a container wants (containerd skips them).
        if device is not None and device.type != "p":
            found.append(device)
    return found


def lookup_devices(host_path: str) -> list[HostDevice]:
    """Device nodes for a kubelet `Device.host_path`: the node itself, or all below a directory.

    A symlink (/dev/disk/by-id/...) is followed to the node it names, as containerd does,
    but the paths returned stay under `host_path` as given: the single node carries
    `host_path` itself, nodes below a directory `host_path/<relative path>`, which is how
    `with_devices` maps them to container paths.
    """
    real = os.path.realpath(host_path)
    try:
        if os.path.isdir(real):
            base = host_path.rstrip("/")
            return [
                dataclasses.replace(d, path=base + d.path[len(real) :])
                for d in _devices_below(real)
            ]
        device = device_from_path(real)
    except FileNotFoundError:
        raise SpecInvalidError(f"device host_path {host_path!r} does not exist") from None
    if device is None:
        raise SpecInvalidError(f"device host_path {host_path!r} is not a device node")
    return [dataclasses.replace(device, path=host_path)]


def list_host_devices(dev_dir: str = "/dev") -> list[HostDevice]:
    """Every device node below /dev (for privileged containers)."""
    return _devices_below(dev_dir)


def read_seccomp_profile(path: str) -> bytes:
    """The bytes of a Localhost seccomp profile (one byte past the limit, so that
    `load_profile` reports an oversized file instead of parsing a truncated one)."""
    with open(path, "rb") as f:
        return f.read(MAX_PROFILE_BYTES + 1)


def probe(
    root: str = "/",
    *,
    runtime_supports_rro: bool = True,
    hostname: str | None = None,
    machine: str | None = None,
    release: str | None = None,
) -> HostFacts:
    """The facts of this host (or of the fixture tree at `root`).

    `runtime_supports_rro`: whether the runtime handler applies "rro" mount options (runc
    >= 1.1, crun >= 1.8, crib-runtime); recursive read-only also needs Linux >= 5.12.
    """
    uname = os.uname()
    kernel = kernel_version(release if release is not None else uname.release)
    cgroup_v2 = os.path.exists(_path(root, "/sys/fs/cgroup/cgroup.controllers"))
    if cgroup_v2:
        controllers = (_read(root, "/sys/fs/cgroup/cgroup.controllers") or "").split()
        hugetlb = "hugetlb" in controllers
        own = _self_cgroup_v2(root)
        swap = os.path.exists(_path(root, f"/sys/fs/cgroup/{own}/memory.swap.max"))
    else:
        hugetlb = os.path.isdir(_path(root, "/sys/fs/cgroup/hugetlb"))
        swap = os.path.exists(_path(root, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"))
    apparmor = (_read(root, "/sys/module/apparmor/parameters/enabled") or "").strip() == "Y"
    status = _read(root, "/proc/self/status") or ""
    min_oom: int | None = None
    if not _status_mask(status, "CapEff") >> CAP_SYS_RESOURCE & 1:
        current = (_read(root, "/proc/self/oom_score_adj") or "0").strip()
        min_oom = int(current) if current.lstrip("-").isdigit() else 0
    return HostFacts(
        arch=_MACHINE_TO_NATIVE.get(machine or platform.machine(), machine or platform.machine()),
        kernel_version=kernel,
        cgroup_v2=cgroup_v2,
        recursive_read_only=runtime_supports_rro and kernel >= RRO_MIN_KERNEL,
        apparmor_enabled=apparmor,
        capabilities=grantable_capabilities(root),
        swap_controller=swap,
        hugetlb_controller=hugetlb,
        min_oom_score_adj=min_oom,
        hostname=hostname if hostname is not None else uname.nodename,
        cgroup_mount_options=_cgroup2_options(root) if cgroup_v2 else (),
        lookup_devices=lookup_devices,
        host_devices=functools.partial(list_host_devices, _path(root, "/dev")),
        mount_propagation=functools.partial(mount_propagation, root=root),
        read_seccomp_profile=read_seccomp_profile,
    )
