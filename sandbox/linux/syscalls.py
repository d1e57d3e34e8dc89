"""The system calls Python 3.11 lacks, through ctypes (the only ctypes module of crib).

Each wrapper is a few lines and raises `OSError(errno, "<syscall>: <strerror>", path)` so a
failure names the call and the object it was about, e.g.
`[Errno 2] mount: No such file or directory: '/run/x/rootfs/proc'`.

libseccomp (`libseccomp.so.2`, Debian package libseccomp2) is bound here as well, loaded on
first use so that commands without a seccomp filter never pay for it.
"""

from __future__ import annotations

import ctypes
import os

# Not `typing.TYPE_CHECKING`: typing costs ~10 ms at every crib-runtime start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)

# Syscall numbers glibc 2.36 has no wrapper for, per architecture (asm/unistd_64.h and
# asm-generic/unistd.h).
_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "mount_setattr": 442},
    "riscv64": {"pivot_root": 41, "keyctl": 219, "mount_setattr": 442},
}
_NR = _SYSCALL_NUMBERS.get(os.uname().machine, _SYSCALL_NUMBERS["x86_64"])

# clone(2) flags, <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags, <sys/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# mount_setattr(2)
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

# prctl(2) options, <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# keyctl(2)
KEYCTL_JOIN_SESSION_KEYRING = 1

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _fail(syscall: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    message = f"{syscall}: {os.strerror(err)}"
    return OSError(err, message, path) if path is not None else OSError(err, message)


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    """unshare(2): move the caller into new namespaces."""
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail("unshare")


def setns(fd: int, nstype: int, path: str | None = None) -> None:
    """setns(2): join the namespace `fd` refers to (`path` is only for the error message)."""
    if _libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)) != 0:
        raise _fail("setns", path)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2)."""
    rc = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if rc != 0:
        raise _fail("mount", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    if _libc.umount2(_b(target), ctypes.c_int(flags)) != 0:
        raise _fail("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (no glibc wrapper)."""
    if _libc.syscall(ctypes.c_long(_NR["pivot_root"]), _b(new_root), _b(put_old)) != 0:
        raise _fail("pivot_root", new_root)


def mount_setattr_readonly_recursive(path: str) -> None:
    """mount_setattr(2) with AT_RECURSIVE and MOUNT_ATTR_RDONLY (the "rro" mount option)."""

    class MountAttr(ctypes.Structure):
        _fields_ = (
            ("attr_set", ctypes.c_uint64),
            ("attr_clr", ctypes.c_uint64),
            ("propagation", ctypes.c_uint64),
            ("userns_fd", ctypes.c_uint64),
        )

    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    rc = _libc.syscall(
        ctypes.c_long(_NR["mount_setattr"]),
        ctypes.c_int(AT_FDCWD),
        _b(path),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if rc != 0:
        raise _fail("mount_setattr", path)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's non-negative result."""
    rc = int(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        )
    )
    if rc < 0:
        raise _fail(f"prctl({option})")
    return rc


def sethostname(name: str) -> None:
    """sethostname(2)."""
    raw = name.encode()
    if _libc.sethostname(raw, ctypes.c_size_t(len(raw))) != 0:
        raise _fail("sethostname", name)


def setdomainname(name: str) -> None:
    """setdomainname(2)."""
    raw = name.encode()
    if _libc.setdomainname(raw, ctypes.c_size_t(len(raw))) != 0:
        raise _fail("setdomainname", name)


def keyctl_join_session_keyring(name: str | None) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring, one per container."""
    rc = _libc.syscall(
        ctypes.c_long(_NR["keyctl"]), ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name)
    )
    if rc < 0:
        raise _fail("keyctl", name)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) with 64-bit masks (version 3 header: two 32-bit words per set)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise _fail("capset")


def capget() -> tuple[int, int, int]:
    """capget(2) of the calling thread: (effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise _fail("capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


# ---- libseccomp (seccomp(2) filters), see seccomp_init(3), seccomp_rule_add(3) ----

SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_NNP = 3
SCMP_FLTATR_CTL_LOG = 6
SCMP_FLTATR_CTL_SSB = 7


class ScmpArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


_seccomp_lib: Any = None


def _libseccomp() -> Any:
    global _seccomp_lib
    if _seccomp_lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as err:
            raise OSError(
                2, "libseccomp.so.2 not found (install libseccomp2)", "libseccomp.so.2"
            ) from err
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ScmpArgCmp),
        )
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        _seccomp_lib = lib
    return _seccomp_lib


def _scmp_check(rc: int, call: str, what: str | None = None) -> None:
    # libseccomp returns -errno instead of setting errno.
    if rc < 0:
        message = f"{call}: {os.strerror(-rc)}"
        raise OSError(-rc, message, what) if what is not None else OSError(-rc, message)


def seccomp_arch_resolve_name(name: str) -> int:
    """The libseccomp token of an architecture name ("x86_64"), 0 when unknown."""
    return int(_libseccomp().seccomp_arch_resolve_name(name.encode()))


def seccomp_arch_native() -> int:
    """The libseccomp token of the running architecture."""
    return int(_libseccomp().seccomp_arch_native())


def seccomp_syscall_resolve_name(name: str) -> int:
    """The native syscall number of `name`, negative when this architecture lacks it."""
    return int(_libseccomp().seccomp_syscall_resolve_name(name.encode()))


class SeccompFilter:
    """A libseccomp filter context: rules are added, then loaded (or exported as BPF)."""

    def __init__(self, default_action: int) -> None:
        self._lib = _libseccomp()
        self._ctx = self._lib.seccomp_init(ctypes.c_uint32(default_action))
        if not self._ctx:
            raise OSError(22, "seccomp_init: invalid default action")

    def close(self) -> None:
        """seccomp_release(3)."""
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def set_attr(self, attr: int, value: int) -> None:
        """seccomp_attr_set(3)."""
        _scmp_check(self._lib.seccomp_attr_set(self._ctx, attr, value), "seccomp_attr_set")

    def add_arch(self, token: int, name: str) -> None:
        """seccomp_arch_add(3); an architecture already present is fine."""
        rc = self._lib.seccomp_arch_add(self._ctx, ctypes.c_uint32(token))
        if rc != -17:  # -EEXIST: the native architecture is in every new filter
            _scmp_check(rc, "seccomp_arch_add", name)

    def add_rule(
        self, action: int, syscall_nr: int, conditions: list[tuple[int, int, int, int]], name: str
    ) -> None:
        """seccomp_rule_add_array(3); conditions are (arg index, op, datum_a, datum_b)."""
        array = (ScmpArgCmp * max(1, len(conditions)))(*(ScmpArgCmp(*c) for c in conditions))
        rc = self._lib.seccomp_rule_add_array(
            self._ctx, ctypes.c_uint32(action), syscall_nr, len(conditions), array
        )
        _scmp_check(rc, "seccomp_rule_add", name)

    def load(self) -> None:
        """seccomp_load(3): install the filter on the calling process."""
        _scmp_check(self._lib.seccomp_load(self._ctx), "seccomp_load")

    def export_bpf(self, fd: int) -> None:
        """seccomp_export_bpf(3): write the compiled BPF program to `fd`."""
        _scmp_check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
