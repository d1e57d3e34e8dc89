"""The container's root filesystem as a plan: a list of operations, then one executor.

`rootfs_plan()` and `paths_plan()` are pure: they turn a spec into `MountOp`s whose
`describe()` prints what will happen, so the plan is unit-tested without root. `apply()`
runs an operation in the container's mount namespace; an `OSError` it raises carries the
syscall and the path, and `op.step` names the operation for the one-line error.

Order (runc libcontainer/rootfs_linux.go prepareRootfs, config-linux.md):

    1. "/" gets rootfsPropagation (default rslave) so nothing leaks to the host
    2. the parent mount of the rootfs is made private (pivot_root(2) refuses shared parents)
    3. the rootfs is bind-mounted onto itself (pivot_root needs a mount point)
    4. spec mounts, in order, each under the rootfs (targets resolved inside it)
    5. /dev: default nodes, the spec's devices, links, /dev/ptmx -> pts/ptmx
    6. pivot_root (or chroot with --no-pivot), old root detached
    7. root remounted read-only when root.readonly
    -- then, after sysctls were written (paths_plan): --
    8. readonlyPaths bind-mounted read-only, maskedPaths covered (/dev/null or an empty ro tmpfs)
"""

from __future__ import annotations

import errno
import os
import stat

from sandbox.linux import syscalls
from sandbox.linux.devices import (
    CORE_LINK,
    DEFAULT_DEVICES,
    DEFAULT_LINKS,
    DeviceNode,
    node_from_spec,
)

# crib-runtime's create imports this module: typing is for mypy only (see devices.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# option -> (flags to set, flags to clear); a data table as in crun's mount flag list.
MOUNT_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (syscalls.MS_RDONLY, 0),
    "rw": (0, syscalls.MS_RDONLY),
    "nosuid": (syscalls.MS_NOSUID, 0),
    "suid": (0, syscalls.MS_NOSUID),
    "nodev": (syscalls.MS_NODEV, 0),
    "dev": (0, syscalls.MS_NODEV),
    "noexec": (syscalls.MS_NOEXEC, 0),
    "exec": (0, syscalls.MS_NOEXEC),
    "sync": (syscalls.MS_SYNCHRONOUS, 0),
    "async": (0, syscalls.MS_SYNCHRONOUS),
    "dirsync": (syscalls.MS_DIRSYNC, 0),
    "remount": (syscalls.MS_REMOUNT, 0),
    "mand": (syscalls.MS_MANDLOCK, 0),
    "nomand": (0, syscalls.MS_MANDLOCK),
    "atime": (0, syscalls.MS_NOATIME),
    "noatime": (syscalls.MS_NOATIME, 0),
    "diratime": (0, syscalls.MS_NODIRATIME),
    "nodiratime": (syscalls.MS_NODIRATIME, 0),
    "relatime": (syscalls.MS_RELATIME, 0),
    "norelatime": (0, syscalls.MS_RELATIME),
    "strictatime": (syscalls.MS_STRICTATIME, 0),
    "nostrictatime": (0, syscalls.MS_STRICTATIME),
    "lazytime": (syscalls.MS_LAZYTIME, 0),
    "nolazytime": (0, syscalls.MS_LAZYTIME),
    "symfollow": (0, syscalls.MS_NOSYMFOLLOW),
    "nosymfollow": (syscalls.MS_NOSYMFOLLOW, 0),
    "bind": (syscalls.MS_BIND, 0),
    "rbind": (syscalls.MS_BIND | syscalls.MS_REC, 0),
}

PROPAGATION_FLAGS: dict[str, int] = {
    "private": syscalls.MS_PRIVATE,
    "rprivate": syscalls.MS_PRIVATE | syscalls.MS_REC,
    "shared": syscalls.MS_SHARED,
    "rshared": syscalls.MS_SHARED | syscalls.MS_REC,
    "slave": syscalls.MS_SLAVE,
    "rslave": syscalls.MS_SLAVE | syscalls.MS_REC,
    "unbindable": syscalls.MS_UNBINDABLE,
    "runbindable": syscalls.MS_UNBINDABLE | syscalls.MS_REC,
}

# Options crib accepts and handles itself (not mount(2) flags nor fs data).
_SPECIAL_OPTIONS = ("rro", "tmpcopyup", "idmap", "ridmap")

_FLAG_NAMES = (
    (syscalls.MS_RDONLY, "ro"),
    (syscalls.MS_NOSUID, "nosuid"),
    (syscalls.MS_NODEV, "nodev"),
    (syscalls.MS_NOEXEC, "noexec"),
    (syscalls.MS_REMOUNT, "remount"),
    (syscalls.MS_BIND, "bind"),
    (syscalls.MS_REC, "rec"),
    (syscalls.MS_PRIVATE, "private"),
    (syscalls.MS_SLAVE, "slave"),
    (syscalls.MS_SHARED, "shared"),
    (syscalls.MS_UNBINDABLE, "unbindable"),
    (syscalls.MS_NOATIME, "noatime"),
    (syscalls.MS_RELATIME, "relatime"),
    (syscalls.MS_STRICTATIME, "strictatime"),
    (syscalls.MS_NOSYMFOLLOW, "nosymfollow"),
)


def flag_names(flags: int) -> str:
    """Mount flags as a comma-separated list of names (for describe())."""
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit) or "-"


class MountOptions:
    """A spec mount's `options`, split into mount(2) flags, propagation, data and extras."""

    __slots__ = ("clear", "data", "extras", "flags", "propagation")

    def __init__(self, options: list[str]) -> None:
        self.flags = 0
        self.clear = 0
        self.propagation: list[int] = []
        self.extras: list[str] = []
        data = []
        for option in options:
            if option in MOUNT_FLAGS:
                set_bits, clear_bits = MOUNT_FLAGS[option]
                self.flags = (self.flags | set_bits) & ~clear_bits
                self.clear |= clear_bits
            elif option in PROPAGATION_FLAGS:
                self.propagation.append(PROPAGATION_FLAGS[option])
            elif option in _SPECIAL_OPTIONS:
                self.extras.append(option)
            else:
                data.append(option)
        self.data = ",".join(data)


class MountOp:
    """One step of the root filesystem plan."""

    step = "mount"

    def describe(self) -> str:
        """One human line saying what `apply` does."""
        raise NotImplementedError

    def apply(self) -> None:
        """Perform it (in the container's mount namespace, as root there)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


# ---- secure path resolution inside the rootfs -----------------------------------------


def resolve_in_root(root: str, path: str) -> str:
    """`root` + `path`, following symlinks as if `root` were "/" (never escaping it).

    A spec mount's destination may cross symlinks in the image (e.g. /var/run -> /run);
    they are resolved against the rootfs, not the host (runc uses filepath-securejoin).
    """
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        links += 1
        if links > 255:
            raise OSError(errno.ELOOP, "resolve: too many levels of symbolic links", path)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return os.path.join(root, *resolved) if resolved else root


def _ensure_target(target: str, is_file: bool) -> None:
    parent = os.path.dirname(target)
    os.makedirs(parent, 0o755, exist_ok=True)
    if is_file:
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(target, 0o755, exist_ok=True)


# ---- operations -----------------------------------------------------------------------


class SetPropagation(MountOp):
    """mount(NULL, target, NULL, MS_<propagation>, NULL)."""

    step = "set propagation"

    def __init__(self, target: str, flags: int) -> None:
        self.target = target
        self.flags = flags

    def describe(self) -> str:
        return f"propagation {flag_names(self.flags)} on {self.target}"

    def apply(self) -> None:
        syscalls.mount(None, self.target, None, self.flags, None)


class MakeParentPrivate(MountOp):
    """Make the mount holding `path` private (pivot_root(2): the parent must not be shared)."""

    step = "make rootfs parent private"

    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"propagation private on the mount holding {self.path}"

    def apply(self) -> None:
        syscalls.mount(None, mount_point_of(self.path), None, syscalls.MS_PRIVATE, None)


def mount_point_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> str:
    """The mount point (from mountinfo) that contains `path`."""
    best = "/"
    real = os.path.realpath(path)
    with open(mountinfo) as info:
        for line in info:
            mount_point = line.split()[4].replace("\\040", " ")
            if (real == mount_point or real.startswith(mount_point.rstrip("/") + "/")) and len(
                mount_point
            ) > len(best):
                best = mount_point
    return best


class Mount(MountOp):
    """A spec mount (or one crib adds), under the rootfs.

    Bind mounts: MS_BIND first, then a remount carrying the flags (the kernel ignores most
    flags on the initial bind, mount(2) "Creating a bind mount"); propagation last.
    """

    def __init__(
        self,
        rootfs: str,
        destination: str,
        source: str,
        fstype: str,
        options: list[str],
    ) -> None:
        self.rootfs = rootfs
        self.destination = destination
        self.source = source
        self.fstype = fstype
        self.options = MountOptions(options)
        self.bind = bool(self.options.flags & syscalls.MS_BIND) or fstype == "bind"
        if self.bind:
            self.options.flags |= syscalls.MS_BIND
        self.step = f"mount {destination}"

    def describe(self) -> str:
        kind = "bind" if self.bind else self.fstype
        extras = f" +{'+'.join(self.options.extras)}" if self.options.extras else ""
        data = f" data={self.options.data}" if self.options.data else ""
        propagation = (
            " propagation=" + "/".join(flag_names(p) for p in self.options.propagation)
            if self.options.propagation
            else ""
        )
        return (
            f"mount {self.source or 'none'} on {self.destination} type {kind}"
            f" ({flag_names(self.options.flags)}){data}{propagation}{extras}"
        )

    def apply(self) -> None:
        target = resolve_in_root(self.rootfs, self.destination)
        flags = self.options.flags
        if self.bind:
            try:
                source_is_file = not stat.S_ISDIR(os.stat(self.source).st_mode)
            except OSError as err:
                raise OSError(err.errno, f"stat: {err.strerror}", self.source) from None
            _ensure_target(target, source_is_file)
            syscalls.mount(
                self.source, target, None, flags & (syscalls.MS_BIND | syscalls.MS_REC), None
            )
            remount = flags & ~(syscalls.MS_REC | syscalls.MS_REMOUNT)
            if remount & ~syscalls.MS_BIND:
                self._remount(target, remount)
        else:
            _ensure_target(target, False)
            try:
                syscalls.mount(
                    self.source or self.fstype,
                    target,
                    self.fstype,
                    flags,
                    self.options.data or None,
                )
            except PermissionError:
                if self.fstype != "sysfs":
                    raise
                # sysfs of a network namespace the caller does not own (host network in a
                # user namespace) cannot be mounted: bind the host's /sys as runc does.
                syscalls.mount("/sys", target, None, syscalls.MS_BIND | syscalls.MS_REC, None)
                self._remount(target, syscalls.MS_BIND | (flags & ~syscalls.MS_REC))
        for propagation in self.options.propagation:
            syscalls.mount(None, target, None, propagation, None)
        if "rro" in self.options.extras:
            syscalls.mount_setattr_readonly_recursive(target)

    def _remount(self, target: str, flags: int) -> None:
        try:
            syscalls.mount(None, target, None, flags | syscalls.MS_REMOUNT, None)
        except PermissionError:
            # In a user namespace, flags locked by the outer mount (nodev, nosuid, noexec,
            # atime) must be kept; add the locked ones and retry (mount(2) EPERM).
            locked = _statvfs_flags(target)
            syscalls.mount(None, target, None, flags | locked | syscalls.MS_REMOUNT, None)


def _statvfs_flags(path: str) -> int:
    st = os.statvfs(path)
    result = 0
    for st_bit, ms_bit in (
        (os.ST_RDONLY, syscalls.MS_RDONLY),
        (os.ST_NOSUID, syscalls.MS_NOSUID),
        (os.ST_NODEV, syscalls.MS_NODEV),
        (os.ST_NOEXEC, syscalls.MS_NOEXEC),
        (os.ST_NOATIME, syscalls.MS_NOATIME),
        (os.ST_RELATIME, syscalls.MS_RELATIME),
    ):
        if st.f_flag & st_bit:
            result |= ms_bit
    return result


class CgroupMount(MountOp):
    """A `cgroup` spec mount.

    v2: a cgroup2 mount when the container has its own cgroup namespace (it then shows the
    container's cgroup as its root), else a bind of the container's cgroup directory.
    v1: a tmpfs holding one bind mount per hierarchy (the container's directory in it), plus
    the links for co-mounted controllers (cpu -> cpu,cpuacct), as runc does.
    """

    def __init__(
        self,
        rootfs: str,
        destination: str,
        options: list[str],
        cgroup_dirs: dict[str, str],
        unified: bool,
        own_namespace: bool,
    ) -> None:
        self.rootfs = rootfs
        self.destination = destination
        self.options = MountOptions(options)
        self.cgroup_dirs = cgroup_dirs
        self.unified = unified
        self.own_namespace = own_namespace
        self.step = f"mount {destination}"

    def describe(self) -> str:
        if self.unified:
            how = "cgroup2" if self.own_namespace else f"bind of {self.cgroup_dirs.get('', '?')}"
        else:
            how = "tmpfs with " + ",".join(sorted(self.cgroup_dirs))
        return f"mount cgroup on {self.destination} as {how} ({flag_names(self.options.flags)})"

    def apply(self) -> None:
        target = resolve_in_root(self.rootfs, self.destination)
        _ensure_target(target, False)
        flags = self.options.flags & ~syscalls.MS_RDONLY
        if self.unified:
            if self.own_namespace:
                syscalls.mount("cgroup2", target, "cgroup2", self.options.flags, None)
            else:
                source = self.cgroup_dirs[""]
                syscalls.mount(source, target, None, syscalls.MS_BIND | syscalls.MS_REC, None)
                syscalls.mount(
                    None,
                    target,
                    None,
                    syscalls.MS_BIND | syscalls.MS_REMOUNT | self.options.flags,
                    None,
                )
            return
        # The tmpfs stays writable (runc 1.1 leaves it so); each hierarchy bind gets the flags.
        syscalls.mount("tmpfs", target, "tmpfs", flags, "mode=755")
        for hierarchy, source in sorted(self.cgroup_dirs.items()):
            sub = os.path.join(target, hierarchy)
            os.makedirs(sub, 0o755, exist_ok=True)
            syscalls.mount(source, sub, None, syscalls.MS_BIND | syscalls.MS_REC, None)
            syscalls.mount(
                None,
                sub,
                None,
                syscalls.MS_BIND | syscalls.MS_REMOUNT | self.options.flags,
                None,
            )
            if "," in hierarchy:
                for controller in hierarchy.split(","):
                    link = os.path.join(target, controller)
                    if not os.path.lexists(link):
                        os.symlink(hierarchy, link)


class MakeDevices(MountOp):
    """Device nodes in /dev: mknod(2), or a bind of the host node inside a user namespace
    (where mknod is not permitted)."""

    step = "create devices"

    def __init__(self, rootfs: str, nodes: list[DeviceNode], bind: bool) -> None:
        self.rootfs = rootfs
        self.nodes = nodes
        self.bind = bind

    def describe(self) -> str:
        how = "bind" if self.bind else "mknod"
        listed = ", ".join(
            f"{n['path']}({n['type']} {n['major']}:{n['minor']})" for n in self.nodes
        )
        return f"{how} devices {listed}"

    def apply(self) -> None:
        for node in self.nodes:
            target = resolve_in_root(self.rootfs, node["path"])
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if self.bind:
                _ensure_target(target, True)
                syscalls.mount(node["path"], target, None, syscalls.MS_BIND, None)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[
                node["type"]
            ]
            if os.path.lexists(target):
                os.unlink(target)
            try:
                os.mknod(
                    target,
                    kind | (node["file_mode"] & 0o7777),
                    os.makedev(node["major"], node["minor"]),
                )
            except OSError as err:
                raise OSError(err.errno, f"mknod: {err.strerror}", node["path"]) from None
            # mknod applies the umask; the spec's mode is exact.
            os.chmod(target, node["file_mode"] & 0o7777)
            os.chown(target, node["uid"], node["gid"])


class MakeLinks(MountOp):
    """Symlinks in the rootfs (the /dev/fd family, /dev/ptmx)."""

    step = "create device links"

    def __init__(self, rootfs: str, links: list[tuple[str, str]]) -> None:
        self.rootfs = rootfs
        self.links = links

    def describe(self) -> str:
        return "links " + ", ".join(f"{link} -> {target}" for link, target in self.links)

    def apply(self) -> None:
        for link, target in self.links:
            path = resolve_in_root(self.rootfs, link)
            if os.path.lexists(path):
                if link != "/dev/ptmx":
                    continue
                os.unlink(path)
            try:
                os.symlink(target, path)
            except OSError as err:
                raise OSError(err.errno, f"symlink: {err.strerror}", link) from None


class PivotRoot(MountOp):
    """pivot_root(2) into the rootfs with the old root stacked on "/" (pivot_root(".", ".")),
    then the old root made slave and detached: nothing of the host stays reachable."""

    step = "pivot_root"

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs

    def describe(self) -> str:
        return f"pivot_root to {self.rootfs}"

    def apply(self) -> None:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            syscalls.pivot_root(".", ".")
            os.fchdir(old_root)
            # Slave first so the detach does not propagate into the host's mounts.
            syscalls.mount(None, ".", None, syscalls.MS_SLAVE | syscalls.MS_REC, None)
            syscalls.umount2(".", syscalls.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old_root)
            os.close(new_root)


class Chroot(MountOp):
    """--no-pivot: move the rootfs over "/" and chroot (for ramfs roots pivot_root refuses)."""

    step = "chroot"

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs

    def describe(self) -> str:
        return f"move {self.rootfs} to / and chroot"

    def apply(self) -> None:
        os.chdir(self.rootfs)
        syscalls.mount(self.rootfs, "/", None, syscalls.MS_MOVE, None)
        os.chroot(".")
        os.chdir("/")


class RemountReadonly(MountOp):
    """Remount a path read-only, keeping its other flags (root.readonly, readonlyPaths)."""

    def __init__(self, path: str, bind_first: bool) -> None:
        self.path = path
        self.bind_first = bind_first
        self.step = f"readonly {path}"

    def describe(self) -> str:
        return f"{'bind and ' if self.bind_first else ''}remount ro {self.path}"

    def apply(self) -> None:
        if self.bind_first:
            try:
                syscalls.mount(self.path, self.path, None, syscalls.MS_BIND | syscalls.MS_REC, None)
            except FileNotFoundError:
                return  # readonlyPaths that do not exist are skipped, as runc does
        # A bind remount changes this mount only, never the filesystem's superblock.
        flags = _statvfs_flags(self.path) | syscalls.MS_RDONLY | syscalls.MS_BIND
        syscalls.mount(None, self.path, None, flags | syscalls.MS_REMOUNT, None)


class MaskPath(MountOp):
    """Cover a path: /dev/null over a file, an empty read-only tmpfs over a directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.step = f"mask {path}"

    def describe(self) -> str:
        return f"mask {self.path}"

    def apply(self) -> None:
        try:
            is_dir = stat.S_ISDIR(os.stat(self.path).st_mode)
        except FileNotFoundError:
            return
        if is_dir:
            syscalls.mount("tmpfs", self.path, "tmpfs", syscalls.MS_RDONLY, None)
        else:
            syscalls.mount("/dev/null", self.path, None, syscalls.MS_BIND, None)


# ---- the plans --------------------------------------------------------------------------


def rootfs_plan(
    spec: Any,
    rootfs: str,
    *,
    cgroup_dirs: dict[str, str] | None = None,
    cgroup_unified: bool = False,
    in_new_userns: bool = False,
    no_pivot: bool = False,
    host_has_kcore: bool = False,
) -> list[MountOp]:
    """Steps 1-7 for `spec` (an OCI Spec), with `rootfs` an absolute host path."""
    linux = spec.get("linux", {})
    namespaces = {ns["type"] for ns in linux.get("namespaces", [])}
    propagation = linux.get("rootfsPropagation") or "rslave"
    plan: list[MountOp] = [
        SetPropagation("/", PROPAGATION_FLAGS[propagation] | syscalls.MS_REC),
        MakeParentPrivate(rootfs),
        Mount("/", rootfs, rootfs, "bind", ["rbind"]),
    ]
    dev_is_tmpfs = False
    destinations = set()
    for mount in spec.get("mounts", []):
        destination = os.path.normpath(mount["destination"])
        destinations.add(destination)
        fstype = mount.get("type", "")
        options = mount.get("options", [])
        if fstype == "cgroup" or fstype == "cgroup2":
            plan.append(
                CgroupMount(
                    rootfs,
                    destination,
                    options,
                    cgroup_dirs or {},
                    cgroup_unified,
                    "cgroup" in namespaces,
                )
            )
            continue
        if (
            destination == "/dev"
            and fstype != "bind"
            and "bind" not in options
            and "rbind" not in options
        ):
            dev_is_tmpfs = True
        plan.append(Mount(rootfs, destination, mount.get("source", ""), fstype, options))
    # The spec's devices are created whether or not /dev is a tmpfs; the defaults only on a
    # tmpfs /dev (a bind-mounted /dev brings its own).
    nodes = list(DEFAULT_DEVICES) if dev_is_tmpfs else []
    for device in linux.get("devices", []):
        node = node_from_spec(device)
        nodes = [n for n in nodes if n["path"] != node["path"]] + [node]
    if nodes:
        plan.append(MakeDevices(rootfs, nodes, bind=in_new_userns))
    if dev_is_tmpfs:
        links = list(DEFAULT_LINKS)
        if host_has_kcore:
            links.append(CORE_LINK)
        if "/dev/pts" in destinations:
            links.append(("/dev/ptmx", "pts/ptmx"))
        plan.append(MakeLinks(rootfs, links))
    plan.append(Chroot(rootfs) if no_pivot else PivotRoot(rootfs))
    if spec.get("root", {}).get("readonly"):
        plan.append(RemountReadonly("/", bind_first=False))
    return plan


def paths_plan(spec: Any) -> list[MountOp]:
    """Step 8: readonlyPaths, then maskedPaths (runc's order), inside the container."""
    linux = spec.get("linux", {})
    plan: list[MountOp] = [
        RemountReadonly(p, bind_first=True) for p in linux.get("readonlyPaths", [])
    ]
    plan.extend(MaskPath(p) for p in linux.get("maskedPaths", []))
    return plan


def describe(plan: list[MountOp]) -> list[str]:
    """The plan as lines (what `crib-runtime` would do, without doing it)."""
    return [op.describe() for op in plan]
