"""Device nodes of a container's /dev and device cgroup rules.

The default nodes and links are the OCI runtime spec's ("Default Devices", config-linux.md):
/dev/null, zero, full, random, urandom, tty, /dev/ptmx -> pts/ptmx, and the /dev/fd links
runc adds (fd, stdin, stdout, stderr, and core -> /proc/kcore).
"""

from __future__ import annotations

# The cgroup managers import this module, and crib-runtime's `delete` imports them at every
# container stop: typing (~10 ms) is for mypy only. At run time a DeviceNode is a dict.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict

    class DeviceNode(TypedDict):
        """A node to create under the container's /dev (OCI `linux.devices[]`, all set)."""

        path: str
        type: str  # "c", "b", "u" (unbuffered char, same as "c") or "p" (fifo)
        major: int
        minor: int
        file_mode: int
        uid: int
        gid: int
else:
    DeviceNode = dict


def _char(path: str, major: int, minor: int) -> DeviceNode:
    return DeviceNode(path=path, type="c", major=major, minor=minor, file_mode=0o666, uid=0, gid=0)


DEFAULT_DEVICES = (
    _char("/dev/null", 1, 3),
    _char("/dev/zero", 1, 5),
    _char("/dev/full", 1, 7),
    _char("/dev/random", 1, 8),
    _char("/dev/urandom", 1, 9),
    _char("/dev/tty", 5, 0),
)

# (link path, target) created in /dev after the device nodes; /dev/core -> /proc/kcore is
# added only when the host has a /proc/kcore (runc's rule).
DEFAULT_LINKS = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)
CORE_LINK = ("/dev/core", "/proc/kcore")

# Device cgroup rules every container gets on top of the spec's (runc's AllowedDevices):
# the default nodes, /dev/console, /dev/pts/*, /dev/ptmx and /dev/net/tun are usable.
DEFAULT_ALLOW_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
)


def node_from_spec(device: dict[str, object]) -> DeviceNode:
    """A `DeviceNode` from an OCI `linux.devices[]` entry (defaults: mode 0666, root-owned)."""

    def number(key: str, default: int) -> int:
        value = device.get(key, default)
        return value if isinstance(value, int) else default

    return DeviceNode(
        path=str(device["path"]),
        type=str(device.get("type", "c")),
        major=number("major", 0),
        minor=number("minor", 0),
        file_mode=number("fileMode", 0o666),
        uid=number("uid", 0),
        gid=number("gid", 0),
    )


def cgroup_rule(
    allow: bool, dev_type: str, major: int | None, minor: int | None, access: str
) -> str:
    """A v1 devices.allow/devices.deny line: `TYPE MAJOR:MINOR ACCESS` (`a` means all)."""
    kind = dev_type or "a"
    if kind == "a":
        return "a"
    major_text = "*" if major is None or major < 0 else str(major)
    minor_text = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {major_text}:{minor_text} {access or 'rwm'}"
