"""The subset of the OCI runtime spec (config.json, runtime-spec v1.0-v1.2) crib reads.

Types are `TypedDict`s over the parsed JSON, for mypy only, so a spec is plain data: no
copying, and nothing to import at run time (crib-runtime start-up is a budget: dataclasses
cost ~10 ms, typing ~10 ms, json ~8 ms; the parser is `common.jsonc`, and the error
classes, which need common.errors, are imported when one is raised).
`parse_spec` checks every field crib reads against `_SCHEMA` and raises `SpecError` naming
the field path and the bad value (`linux.namespaces[2].type: unknown namespace type "foo"`);
fields crib does not read are left alone, as runc does.

    spec = load_spec("/path/to/bundle")     # reads BUNDLE/config.json
    spec["process"]["args"]                 # validated: a non-empty list of strings
"""

from __future__ import annotations

import os

from common import jsonc

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: mypy honours the name
if TYPE_CHECKING:
    from typing import Any, TypedDict

    from sandbox.oci.errors import SpecError

OCI_VERSION = "1.0.2"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def __getattr__(name: str) -> type[Exception]:
    # SpecError and SpecNotFoundError live in sandbox.oci.errors: imported on failure only.
    if name in ("SpecError", "SpecNotFoundError"):
        from sandbox.oci import errors

        error: type[Exception] = getattr(errors, name)
        return error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _error(message: str) -> SpecError:
    from sandbox.oci.errors import SpecError

    return SpecError(message)


# The types exist for mypy only: creating ~30 TypedDict classes costs milliseconds at every
# crib-runtime start, and at run time a spec is the parsed JSON itself.
if TYPE_CHECKING:

    class User(TypedDict, total=False):
        uid: int
        gid: int
        umask: int
        additionalGids: list[int]

    class Capabilities(TypedDict, total=False):
        bounding: list[str]
        effective: list[str]
        inheritable: list[str]
        permitted: list[str]
        ambient: list[str]

    class Rlimit(TypedDict):
        type: str
        hard: int
        soft: int

    class ConsoleSize(TypedDict):
        height: int
        width: int

    class Process(TypedDict, total=False):
        terminal: bool
        consoleSize: ConsoleSize
        user: User
        args: list[str]
        env: list[str]
        cwd: str
        capabilities: Capabilities
        rlimits: list[Rlimit]
        noNewPrivileges: bool
        oomScoreAdj: int
        apparmorProfile: str
        selinuxLabel: str

    class Root(TypedDict, total=False):
        path: str
        readonly: bool

    class Mount(TypedDict, total=False):
        destination: str
        source: str
        type: str
        options: list[str]

    class Namespace(TypedDict, total=False):
        type: str
        path: str

    class IDMapping(TypedDict):
        containerID: int
        hostID: int
        size: int

    class Device(TypedDict, total=False):
        type: str
        path: str
        major: int
        minor: int
        fileMode: int
        uid: int
        gid: int

    class DeviceRule(TypedDict, total=False):
        allow: bool
        type: str
        major: int
        minor: int
        access: str

    class Memory(TypedDict, total=False):
        limit: int
        reservation: int
        swap: int
        kernel: int
        kernelTCP: int
        swappiness: int
        disableOOMKiller: bool
        useHierarchy: bool

    class Cpu(TypedDict, total=False):
        shares: int
        quota: int
        period: int
        realtimeRuntime: int
        realtimePeriod: int
        cpus: str
        mems: str
        idle: int

    class Pids(TypedDict, total=False):
        limit: int

    class WeightDevice(TypedDict, total=False):
        major: int
        minor: int
        weight: int
        leafWeight: int

    class ThrottleDevice(TypedDict):
        major: int
        minor: int
        rate: int

    class BlockIO(TypedDict, total=False):
        weight: int
        leafWeight: int
        weightDevice: list[WeightDevice]
        throttleReadBpsDevice: list[ThrottleDevice]
        throttleWriteBpsDevice: list[ThrottleDevice]
        throttleReadIOPSDevice: list[ThrottleDevice]
        throttleWriteIOPSDevice: list[ThrottleDevice]

    class HugepageLimit(TypedDict):
        pageSize: str
        limit: int

    class Resources(TypedDict, total=False):
        devices: list[DeviceRule]
        memory: Memory
        cpu: Cpu
        pids: Pids
        blockIO: BlockIO
        hugepageLimits: list[HugepageLimit]
        unified: dict[str, str]

    class SeccompArg(TypedDict, total=False):
        index: int
        value: int
        valueTwo: int
        op: str

    class SeccompSyscall(TypedDict, total=False):
        names: list[str]
        action: str
        errnoRet: int
        args: list[SeccompArg]

    class Seccomp(TypedDict, total=False):
        defaultAction: str
        defaultErrnoRet: int
        architectures: list[str]
        flags: list[str]
        listenerPath: str
        syscalls: list[SeccompSyscall]

    class TimeOffset(TypedDict, total=False):
        secs: int
        nanosecs: int

    class Linux(TypedDict, total=False):
        namespaces: list[Namespace]
        uidMappings: list[IDMapping]
        gidMappings: list[IDMapping]
        timeOffsets: dict[str, TimeOffset]
        devices: list[Device]
        cgroupsPath: str
        resources: Resources
        rootfsPropagation: str
        maskedPaths: list[str]
        readonlyPaths: list[str]
        mountLabel: str
        sysctl: dict[str, str]
        seccomp: Seccomp

    class Spec(TypedDict, total=False):
        ociVersion: str
        process: Process
        root: Root
        hostname: str
        domainname: str
        mounts: list[Mount]
        linux: Linux
        annotations: dict[str, str]


# ---- schema: field -> expected shape. A shape is a type, ("list", shape), ("map", shape)
# or a dict (an object with those fields). Unknown fields are ignored (forward compatible).

_IDMAP = {"containerID": int, "hostID": int, "size": int}
_THROTTLE = {"major": int, "minor": int, "rate": int}

RESOURCES_SCHEMA: dict[str, Any] = {
    "devices": (
        "list",
        {"allow": bool, "type": str, "major": int, "minor": int, "access": str},
    ),
    "memory": {
        "limit": int,
        "reservation": int,
        "swap": int,
        "kernel": int,
        "kernelTCP": int,
        "swappiness": int,
        "disableOOMKiller": bool,
        "useHierarchy": bool,
    },
    "cpu": {
        "shares": int,
        "quota": int,
        "period": int,
        "realtimeRuntime": int,
        "realtimePeriod": int,
        "cpus": str,
        "mems": str,
        "idle": int,
    },
    "pids": {"limit": int},
    "blockIO": {
        "weight": int,
        "leafWeight": int,
        "weightDevice": (
            "list",
            {"major": int, "minor": int, "weight": int, "leafWeight": int},
        ),
        "throttleReadBpsDevice": ("list", _THROTTLE),
        "throttleWriteBpsDevice": ("list", _THROTTLE),
        "throttleReadIOPSDevice": ("list", _THROTTLE),
        "throttleWriteIOPSDevice": ("list", _THROTTLE),
    },
    "hugepageLimits": ("list", {"pageSize": str, "limit": int}),
    "unified": ("map", str),
}

PROCESS_SCHEMA: dict[str, Any] = {
    "terminal": bool,
    "consoleSize": {"height": int, "width": int},
    "user": {"uid": int, "gid": int, "umask": int, "additionalGids": ("list", int)},
    "args": ("list", str),
    "env": ("list", str),
    "cwd": str,
    "capabilities": {
        "bounding": ("list", str),
        "effective": ("list", str),
        "inheritable": ("list", str),
        "permitted": ("list", str),
        "ambient": ("list", str),
    },
    "rlimits": ("list", {"type": str, "hard": int, "soft": int}),
    "noNewPrivileges": bool,
    "oomScoreAdj": int,
    "apparmorProfile": str,
    "selinuxLabel": str,
}

_SCHEMA: dict[str, Any] = {
    "ociVersion": str,
    "process": PROCESS_SCHEMA,
    "root": {"path": str, "readonly": bool},
    "hostname": str,
    "domainname": str,
    "mounts": ("list", {"destination": str, "source": str, "type": str, "options": ("list", str)}),
    "annotations": ("map", str),
    "linux": {
        "namespaces": ("list", {"type": str, "path": str}),
        "uidMappings": ("list", _IDMAP),
        "gidMappings": ("list", _IDMAP),
        "timeOffsets": ("map", {"secs": int, "nanosecs": int}),
        "devices": (
            "list",
            {
                "type": str,
                "path": str,
                "major": int,
                "minor": int,
                "fileMode": int,
                "uid": int,
                "gid": int,
            },
        ),
        "cgroupsPath": str,
        "resources": RESOURCES_SCHEMA,
        "rootfsPropagation": str,
        "maskedPaths": ("list", str),
        "readonlyPaths": ("list", str),
        "mountLabel": str,
        "sysctl": ("map", str),
        "seccomp": {
            "defaultAction": str,
            "defaultErrnoRet": int,
            "architectures": ("list", str),
            "flags": ("list", str),
            "listenerPath": str,
            "syscalls": (
                "list",
                {
                    "names": ("list", str),
                    "action": str,
                    "errnoRet": int,
                    "args": (
                        "list",
                        {"index": int, "value": int, "valueTwo": int, "op": str},
                    ),
                },
            ),
        },
    },
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean"}


def _check(value: Any, shape: Any, where: str) -> None:
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise _error(f"{where}: must be an object, got {jsonc.dumps(value)[:60]}")
        for key, sub in shape.items():
            if key in value and value[key] is not None:
                _check(value[key], sub, f"{where}.{key}" if where else key)
        # JSON null means "absent" for optional fields (Go's omitempty peers emit it).
        for key in [k for k, v in value.items() if v is None and k in shape]:
            del value[key]
        return
    if isinstance(shape, tuple):
        kind, sub = shape
        if kind == "list":
            if not isinstance(value, list):
                raise _error(f"{where}: must be a list, got {jsonc.dumps(value)[:60]}")
            for index, item in enumerate(value):
                _check(item, sub, f"{where}[{index}]")
        else:
            if not isinstance(value, dict):
                raise _error(f"{where}: must be an object, got {jsonc.dumps(value)[:60]}")
            for key, item in value.items():
                _check(item, sub, f"{where}.{key}")
        return
    # bool is a subclass of int in Python; JSON true is never a valid integer here.
    if shape is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _error(f"{where}: must be an integer, got {jsonc.dumps(value)[:60]}")
    if not isinstance(value, shape):
        raise _error(f"{where}: must be {_TYPE_NAMES[shape]}, got {jsonc.dumps(value)[:60]}")


def check_shape(value: Any, shape: Any, where: str) -> None:
    """Check `value` against a schema fragment (e.g. `RESOURCES_SCHEMA`); raises SpecError."""
    _check(value, shape, where)


def parse_spec(raw: str | bytes, *, need_process: bool = True) -> Spec:
    """Parse and validate config.json text; raises `SpecError` naming the field at fault."""
    try:
        value = jsonc.loads(raw)
    except ValueError as err:
        raise _error(f"config.json: invalid JSON: {err}") from None
    _check(value, _SCHEMA, "")
    spec: Spec = value
    validate(spec, need_process=need_process)
    return spec


def load_spec(bundle: str) -> Spec:
    """Read and validate BUNDLE/config.json."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as config_file:
            raw = config_file.read()
    except FileNotFoundError:
        from sandbox.oci.errors import SpecNotFoundError

        raise SpecNotFoundError(f"{path}: config.json not found in bundle") from None
    except OSError as err:
        raise _error(f"{path}: {err.strerror}") from None
    return parse_spec(raw)


_PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable")
_RUNBINDABLE = ("runbindable",)


def validate(spec: Spec, *, need_process: bool = True) -> None:
    """Semantic checks beyond field types (the ones runc's validator makes)."""
    if "ociVersion" not in spec:
        raise _error("ociVersion: missing")
    root = spec.get("root")
    if not root or not root.get("path"):
        raise _error("root.path: missing")
    process = spec.get("process")
    if need_process:
        if process is None:
            raise _error("process: missing")
        validate_process(process, "process")
    linux = spec.get("linux", {})
    seen: set[str] = set()
    for index, ns in enumerate(linux.get("namespaces", [])):
        ns_type = ns.get("type", "")
        if ns_type not in NAMESPACE_TYPES:
            raise _error(f'linux.namespaces[{index}].type: unknown namespace type "{ns_type}"')
        if ns_type in seen:
            raise _error(f'linux.namespaces[{index}].type: duplicate namespace "{ns_type}"')
        seen.add(ns_type)
        path = ns.get("path")
        if path is not None and not os.path.isabs(path):
            raise _error(f'linux.namespaces[{index}].path: not absolute: "{path}"')
    if "mount" not in seen:
        # runc: "unable to apply rootfs without a new mount namespace"; crib builds the
        # root filesystem with mounts that must never reach the host's namespace.
        raise _error("linux.namespaces: a mount namespace is required")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise _error("linux.uidMappings: user namespace mappings need a user namespace")
    new_userns = any(
        ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces", [])
    )
    if new_userns and (not linux.get("uidMappings") or not linux.get("gidMappings")):
        raise _error("linux.uidMappings: a new user namespace needs uid and gid mappings")
    if linux.get("timeOffsets") and "time" not in seen:
        raise _error("linux.timeOffsets: time offsets need a time namespace")
    if (
        ("hostname" in spec or "domainname" in spec)
        and spec.get("hostname", "") + spec.get("domainname", "")
        and "uts" not in seen
    ):
        raise _error("hostname: setting the hostname needs a uts namespace")
    for index, mount in enumerate(spec.get("mounts", [])):
        destination = mount.get("destination")
        if not destination:
            raise _error(f"mounts[{index}].destination: missing")
        if not os.path.isabs(destination):
            raise _error(f'mounts[{index}].destination: not absolute: "{destination}"')
    propagation = linux.get("rootfsPropagation", "")
    if propagation not in _PROPAGATIONS + _RUNBINDABLE:
        raise _error(f'linux.rootfsPropagation: unknown propagation "{propagation}"')
    for key in linux.get("sysctl", {}):
        # A key is a path under /proc/sys: reject anything that could escape it
        # (CVE-2022-0811 was sysctl injection through a CRI runtime).
        if not key or ".." in key or key.startswith("/") or any(c in key for c in "\n\t=+ "):
            raise _error(f'linux.sysctl: invalid key "{key}"')


_RLIMIT_TYPES = (
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
)


def validate_process(process: Process, where: str) -> None:
    """Checks of a process object (config.json's, or an exec --process file)."""
    if not process.get("args"):
        raise _error(f"{where}.args: must not be empty")
    cwd = process.get("cwd", "/")
    if not os.path.isabs(cwd):
        raise _error(f'{where}.cwd: not absolute: "{cwd}"')
    seen: set[str] = set()
    for index, rlimit in enumerate(process.get("rlimits", [])):
        for field in ("type", "hard", "soft"):
            if field not in rlimit:
                raise _error(f"{where}.rlimits[{index}].{field}: missing")
        if rlimit["type"] not in _RLIMIT_TYPES:
            raise _error(f'{where}.rlimits[{index}].type: unknown rlimit "{rlimit["type"]}"')
        if rlimit["type"] in seen:
            raise _error(f'{where}.rlimits[{index}].type: duplicate rlimit "{rlimit["type"]}"')
        seen.add(rlimit["type"])
        if rlimit["soft"] > rlimit["hard"]:
            raise _error(f"{where}.rlimits[{index}]: soft limit above hard limit")
    for index, item in enumerate(process.get("env", [])):
        if "=" not in item:
            raise _error(f'{where}.env[{index}]: not KEY=VALUE: "{item}"')


def parse_process(raw: str | bytes, where: str = "process") -> Process:
    """Parse and validate a process JSON object (`exec --process FILE`)."""
    try:
        value = jsonc.loads(raw)
    except ValueError as err:
        raise _error(f"{where}: invalid JSON: {err}") from None
    _check(value, PROCESS_SCHEMA, where)
    process: Process = value
    validate_process(process, where)
    return process


def parse_resources(raw: str | bytes, where: str = "resources") -> Resources:
    """Parse and validate a LinuxResources JSON object (`update --resources`)."""
    try:
        value: Any = jsonc.loads(raw) if raw.strip() else {}
    except ValueError as err:
        raise _error(f"{where}: invalid JSON: {err}") from None
    _check(value, RESOURCES_SCHEMA, where)
    resources: Resources = value
    return resources


def namespace_paths(spec: Spec) -> dict[str, str | None]:
    """namespace type -> path to join, or None to create it."""
    return {
        ns["type"]: ns.get("path") or None for ns in spec.get("linux", {}).get("namespaces", [])
    }
