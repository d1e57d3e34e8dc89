"""Shared builders for the specgen tests, and a structural check of OCI runtime specs.

`check_oci_spec` encodes facts of the OCI runtime-spec JSON schema (config-schema.json,
config-linux.json, defs.json, defs-linux.json of opencontainers/runtime-spec 1.2): which
fields are required, their JSON types, integer ranges and enumerations. It is not the
schema itself; it checks the parts crib writes. The tests at the bottom show it rejects
what it should.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import (
    GroupEntry,
    HostDevice,
    HostFacts,
    PasswdEntry,
    PodFiles,
    SpecInputs,
    UserDatabase,
)
from cri.specgen.security import CAPABILITIES

# A host with every optional feature, on a fixed kernel and architecture, so that golden
# files do not depend on the machine running the tests.
FAKE_DEVICES = {
    "/dev/null": HostDevice("/dev/null", "c", 1, 3, 0o666, 0, 0),
    "/dev/fuse": HostDevice("/dev/fuse", "c", 10, 229, 0o666, 0, 0),
    "/dev/sda": HostDevice("/dev/sda", "b", 8, 0, 0o660, 0, 6),
}
FAKE_DEVICE_DIRS = {
    "/dev/snd": [
        HostDevice("/dev/snd/controlC0", "c", 116, 2, 0o660, 0, 29),
        HostDevice("/dev/snd/timer", "c", 116, 33, 0o660, 0, 29),
    ],
}


def fake_lookup_devices(path: str) -> Sequence[HostDevice]:
    """Devices at a fake host path; an unknown path has none."""
    if path in FAKE_DEVICE_DIRS:
        return FAKE_DEVICE_DIRS[path]
    return [FAKE_DEVICES[path]] if path in FAKE_DEVICES else []


def fake_host_devices() -> Sequence[HostDevice]:
    """Every fake host device, as a privileged container would get them."""
    return [*FAKE_DEVICES.values(), *FAKE_DEVICE_DIRS["/dev/snd"]]


def fake_host(**overrides: Any) -> HostFacts:
    """HostFacts of the fake host, with `overrides` applied."""
    facts = HostFacts(
        arch="amd64",
        kernel_version=(6, 1),
        cgroup_v2=False,
        recursive_read_only=True,
        apparmor_enabled=False,
        capabilities=CAPABILITIES,
        swap_controller=True,
        hugetlb_controller=True,
        min_oom_score_adj=None,
        hostname="node-1",
        lookup_devices=fake_lookup_devices,
        host_devices=fake_host_devices,
        mount_propagation=lambda path: "shared" if path.startswith("/shared") else "private",
        read_seccomp_profile=lambda path: b"",
    )
    return dataclasses.replace(facts, **overrides)


BUSYBOX_IMAGE_CONFIG: dict[str, Any] = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["sh"],
}

BUSYBOX_USERS = UserDatabase(
    passwd=(
        PasswdEntry("root", 0, 0, "/root"),
        PasswdEntry("daemon", 1, 1, "/usr/sbin"),
        PasswdEntry("nobody", 65534, 65534, "/home"),
        PasswdEntry("app", 1000, 1000, "/home/app"),
    ),
    group=(
        GroupEntry("root", 0),
        GroupEntry("daemon", 1),
        GroupEntry("wheel", 10, ("root",)),
        GroupEntry("app", 1000),
        GroupEntry("extra", 50000, ("app", "daemon")),
        GroupEntry("nogroup", 65534),
    ),
)

NAMESPACE_PINS = {
    "net": "/run/crib/ns/net/sandbox-1",
    "ipc": "/run/crib/ns/ipc/sandbox-1",
    "uts": "/run/crib/ns/uts/sandbox-1",
}

POD_FILES = PodFiles(
    hostname_path="/var/lib/crib/sandboxes/sandbox-1/hostname",
    hosts_path="/var/lib/crib/sandboxes/sandbox-1/hosts",
    resolv_conf_path="/var/lib/crib/sandboxes/sandbox-1/resolv.conf",
    shm_path="/run/crib/sandboxes/sandbox-1/shm",
)


def sandbox_config(
    *,
    network: int = pb.POD,
    pid: int = pb.CONTAINER,
    ipc: int = pb.POD,
    privileged: bool = False,
    hostname: str = "web-0",
) -> pb.PodSandboxConfig:
    """A kubelet-like PodSandboxConfig (pid CONTAINER unless the pod shares its pid namespace)."""
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web-0", uid="pod-uid-1", namespace="default"),
        hostname=hostname,
        log_directory="/var/log/pods/default_web-0_pod-uid-1",
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/besteffort/podpod-uid-1",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=network, pid=pid, ipc=ipc),
                privileged=privileged,
            ),
        ),
    )


def container_config(**security: Any) -> pb.ContainerConfig:
    """A kubelet-like ContainerConfig; keyword arguments go into its security context."""
    namespace_options = security.pop(
        "namespace_options", pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
    )
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0),
        image=pb.ImageSpec(image="docker.io/library/busybox:latest"),
        log_path="app/0.log",
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=namespace_options, **security
            ),
        ),
    )


def make_inputs(
    config: pb.ContainerConfig | None = None,
    sandbox: pb.PodSandboxConfig | None = None,
    **overrides: Any,
) -> SpecInputs:
    """SpecInputs for a busybox container in a kubelet-like pod on the fake host."""
    fields: dict[str, Any] = {
        "container_id": "container-1",
        "sandbox_id": "sandbox-1",
        "config": config if config is not None else container_config(),
        "sandbox_config": sandbox if sandbox is not None else sandbox_config(),
        "image_config": BUSYBOX_IMAGE_CONFIG,
        "image_name": "docker.io/library/busybox:latest",
        "rootfs_path": "/var/lib/crib/containers/container-1/rootfs",
        "namespace_paths": NAMESPACE_PINS,
        "pod_files": POD_FILES,
        "cgroup_parent": "/kubepods/besteffort/podpod-uid-1",
        "user_db": BUSYBOX_USERS,
        "host": fake_host(),
    }
    fields.update(overrides)
    return SpecInputs(**fields)


def empty_spec() -> dict[str, Any]:
    """The smallest spec a single with_* step can work on."""
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "/rootfs", "readonly": False},
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/", "env": []},
        "mounts": [],
        "linux": {"namespaces": []},
    }


# ---- structural check of OCI runtime specs (facts of the runtime-spec JSON schema) -------

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64 = (-(2**63), 2**63 - 1)
NAMESPACE_TYPES = {"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"}
SECCOMP_ACTIONS = {
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
}
SECCOMP_OPS = {
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
}
# The schema's RootfsPropagation enum, plus the recursive spellings runc and crun accept
# and containerd and CRI-O write ("rshared", "rslave").
ROOTFS_PROPAGATIONS = {"private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave"}


class SpecShapeError(AssertionError):
    """A spec violates a fact of the OCI runtime-spec schema."""


def _expect(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise SpecShapeError(f"{where}: {message}")


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _object(value: Any, where: str, required: Sequence[str] = ()) -> dict[str, Any]:
    _expect(isinstance(value, dict), where, f"must be an object, got {type(value).__name__}")
    for key in required:
        _expect(key in value, where, f"missing required field {key!r}")
    return value  # type: ignore[no-any-return]


def _strings(value: Any, where: str) -> None:
    _expect(isinstance(value, list), where, "must be an array")
    for item in value:
        _expect(isinstance(item, str), where, f"items must be strings, got {item!r}")


def _id_mappings(value: Any, where: str) -> None:
    _expect(isinstance(value, list), where, "must be an array")
    for i, mapping in enumerate(value):
        m = _object(mapping, f"{where}[{i}]", ("containerID", "hostID", "size"))
        for key in ("containerID", "hostID", "size"):
            _expect(_is_int(m[key], 0, UINT32_MAX), f"{where}[{i}].{key}", "must be uint32")


def check_oci_spec(spec: Any) -> None:
    """Raise SpecShapeError if `spec` breaks a fact of the runtime-spec schema."""
    top = _object(spec, "spec", ("ociVersion",))
    _expect(isinstance(top["ociVersion"], str), "ociVersion", "must be a string")
    _expect(
        re.fullmatch(r"\d+\.\d+\.\d+(-.+)?", top["ociVersion"]) is not None,
        "ociVersion",
        "must be a SemVer",
    )
    if "root" in top:
        root = _object(top["root"], "root", ("path",))
        _expect(isinstance(root["path"], str), "root.path", "must be a string")
        if "readonly" in root:
            _expect(isinstance(root["readonly"], bool), "root.readonly", "must be a boolean")
    if "hostname" in top:
        _expect(isinstance(top["hostname"], str), "hostname", "must be a string")
    if "annotations" in top:
        annotations = _object(top["annotations"], "annotations")
        for key, value in annotations.items():
            _expect(isinstance(key, str) and key != "", "annotations", "keys must be non-empty")
            _expect(isinstance(value, str), f"annotations[{key}]", "must be a string")
    if "mounts" in top:
        _expect(isinstance(top["mounts"], list), "mounts", "must be an array")
        for i, mount in enumerate(top["mounts"]):
            m = _object(mount, f"mounts[{i}]", ("destination",))
            for key in ("destination", "source", "type"):
                if key in m:
                    _expect(isinstance(m[key], str), f"mounts[{i}].{key}", "must be a string")
            if "options" in m:
                _strings(m["options"], f"mounts[{i}].options")
            for key in ("uidMappings", "gidMappings"):
                if key in m:
                    _id_mappings(m[key], f"mounts[{i}].{key}")
    if "process" in top:
        _check_process(top["process"])
    if "linux" in top:
        _check_linux(top["linux"])


def _check_process(value: Any) -> None:
    process = _object(value, "process", ("cwd",))
    _expect(isinstance(process["cwd"], str), "process.cwd", "must be a string")
    # config.md: args is REQUIRED on POSIX platforms and cwd MUST be an absolute path.
    _expect(process["cwd"].startswith("/"), "process.cwd", "must be absolute")
    _expect("args" in process, "process", "args is required on Linux")
    _strings(process["args"], "process.args")
    _expect(len(process["args"]) > 0, "process.args", "must not be empty")
    if "env" in process:
        _strings(process["env"], "process.env")
    for key in ("terminal", "noNewPrivileges"):
        if key in process:
            _expect(isinstance(process[key], bool), f"process.{key}", "must be a boolean")
    # config.md: user is REQUIRED on POSIX platforms, with uid and gid.
    user = _object(process.get("user"), "process.user", ("uid", "gid"))
    for key in ("uid", "gid"):
        _expect(_is_int(user[key], 0, UINT32_MAX), f"process.user.{key}", "must be uint32")
    for gid in user.get("additionalGids", []):
        _expect(_is_int(gid, 0, UINT32_MAX), "process.user.additionalGids", "must be uint32")
    if "capabilities" in process:
        caps = _object(process["capabilities"], "process.capabilities")
        for key, names in caps.items():
            _expect(
                key in {"bounding", "permitted", "effective", "inheritable", "ambient"},
                "process.capabilities",
                f"unknown set {key!r}",
            )
            _strings(names, f"process.capabilities.{key}")
            for name in names:
                _expect(name.startswith("CAP_"), f"process.capabilities.{key}", f"bad {name!r}")
    if "oomScoreAdj" in process:
        _expect(_is_int(process["oomScoreAdj"], *INT64), "process.oomScoreAdj", "must be int")
    if "apparmorProfile" in process:
        _expect(isinstance(process["apparmorProfile"], str), "process.apparmorProfile", "string")
    for i, rlimit in enumerate(process.get("rlimits", [])):
        r = _object(rlimit, f"process.rlimits[{i}]", ("type", "soft", "hard"))
        _expect(re.fullmatch(r"RLIMIT_[A-Z]+", r["type"]) is not None, "rlimits", "bad type")


def _check_linux(value: Any) -> None:
    linux = _object(value, "linux")
    for i, ns in enumerate(linux.get("namespaces", [])):
        n = _object(ns, f"linux.namespaces[{i}]", ("type",))
        _expect(n["type"] in NAMESPACE_TYPES, f"linux.namespaces[{i}].type", f"bad {n['type']!r}")
        if "path" in n:
            _expect(isinstance(n["path"], str), f"linux.namespaces[{i}].path", "must be a string")
    types = [ns["type"] for ns in linux.get("namespaces", [])]
    _expect(len(types) == len(set(types)), "linux.namespaces", "a type appears twice")
    for key in ("uidMappings", "gidMappings"):
        if key in linux:
            _id_mappings(linux[key], f"linux.{key}")
    for i, device in enumerate(linux.get("devices", [])):
        d = _object(device, f"linux.devices[{i}]", ("type", "path"))
        _expect(re.fullmatch("[cbup]", d["type"]) is not None, f"linux.devices[{i}]", "bad type")
        for key in ("major", "minor"):
            if key in d:
                _expect(_is_int(d[key], *INT64), f"linux.devices[{i}].{key}", "must be int64")
        for key in ("uid", "gid", "fileMode"):
            if key in d:
                _expect(_is_int(d[key], 0, UINT32_MAX), f"linux.devices[{i}].{key}", "uint32")
    if "resources" in linux:
        _check_resources(linux["resources"])
    for key in ("maskedPaths", "readonlyPaths"):
        if key in linux:
            _strings(linux[key], f"linux.{key}")
    if "cgroupsPath" in linux:
        _expect(isinstance(linux["cgroupsPath"], str), "linux.cgroupsPath", "must be a string")
    if "rootfsPropagation" in linux:
        _expect(
            linux["rootfsPropagation"] in ROOTFS_PROPAGATIONS,
            "linux.rootfsPropagation",
            f"bad {linux['rootfsPropagation']!r}",
        )
    if "sysctl" in linux:
        for key, val in _object(linux["sysctl"], "linux.sysctl").items():
            _expect(isinstance(val, str), f"linux.sysctl[{key}]", "must be a string")
    if "seccomp" in linux:
        _check_seccomp(linux["seccomp"])


def _check_resources(value: Any) -> None:
    resources = _object(value, "linux.resources")
    for i, rule in enumerate(resources.get("devices", [])):
        r = _object(rule, f"linux.resources.devices[{i}]", ("allow",))
        _expect(isinstance(r["allow"], bool), f"linux.resources.devices[{i}].allow", "boolean")
        if "access" in r:
            _expect(re.fullmatch("[rwm]+", r["access"]) is not None, "access", "bad access")
    if "cpu" in resources:
        cpu = _object(resources["cpu"], "linux.resources.cpu")
        for key in ("shares", "period"):
            if key in cpu:
                _expect(_is_int(cpu[key], 0, UINT64_MAX), f"cpu.{key}", "must be uint64")
        if "quota" in cpu:
            _expect(_is_int(cpu["quota"], *INT64), "cpu.quota", "must be int64")
        for key in ("cpus", "mems"):
            if key in cpu:
                _expect(isinstance(cpu[key], str), f"cpu.{key}", "must be a string")
    if "memory" in resources:
        memory = _object(resources["memory"], "linux.resources.memory")
        for key in ("limit", "swap", "reservation"):
            if key in memory:
                _expect(_is_int(memory[key], *INT64), f"memory.{key}", "must be int64")
    for i, limit in enumerate(resources.get("hugepageLimits", [])):
        h = _object(limit, f"hugepageLimits[{i}]", ("pageSize", "limit"))
        _expect(re.fullmatch("[1-9][0-9]*[KMG]B", h["pageSize"]) is not None, "pageSize", "bad")
        _expect(_is_int(h["limit"], 0, UINT64_MAX), "hugepageLimits.limit", "must be uint64")
    if "unified" in resources:
        for key, val in _object(resources["unified"], "unified").items():
            _expect(isinstance(val, str), f"unified[{key}]", "must be a string")


def _check_seccomp(value: Any) -> None:
    seccomp = _object(value, "linux.seccomp", ("defaultAction",))
    _expect(seccomp["defaultAction"] in SECCOMP_ACTIONS, "seccomp.defaultAction", "bad action")
    if "defaultErrnoRet" in seccomp:
        _expect(_is_int(seccomp["defaultErrnoRet"], 0, UINT32_MAX), "defaultErrnoRet", "uint32")
    for arch in seccomp.get("architectures", []):
        _expect(isinstance(arch, str) and arch.startswith("SCMP_ARCH_"), "architectures", "bad")
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        where = f"linux.seccomp.syscalls[{i}]"
        r = _object(rule, where, ("names", "action"))
        _strings(r["names"], f"{where}.names")
        _expect(len(r["names"]) >= 1, f"{where}.names", "needs at least one name")
        _expect(r["action"] in SECCOMP_ACTIONS, f"{where}.action", "bad action")
        if "errnoRet" in r:
            _expect(_is_int(r["errnoRet"], 0, UINT32_MAX), f"{where}.errnoRet", "uint32")
        for j, arg in enumerate(r.get("args", [])):
            a = _object(arg, f"{where}.args[{j}]", ("index", "value", "op"))
            _expect(_is_int(a["index"], 0, UINT32_MAX), f"{where}.args[{j}].index", "uint32")
            _expect(_is_int(a["value"], 0, UINT64_MAX), f"{where}.args[{j}].value", "uint64")
            _expect(a["op"] in SECCOMP_OPS, f"{where}.args[{j}].op", "bad operator")


# ---- the checker rejects what it should ------------------------------------------------


def _valid_spec() -> dict[str, Any]:
    spec = empty_spec()
    spec["linux"]["namespaces"] = [{"type": "mount"}]
    return spec


def test_checker_accepts_a_minimal_spec() -> None:
    check_oci_spec(_valid_spec())


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda s: s.pop("ociVersion"), "ociVersion"),
        (lambda s: s["root"].pop("path"), "'path'"),
        (lambda s: s["process"].pop("cwd"), "'cwd'"),
        (lambda s: s["process"].update(cwd="relative"), "absolute"),
        (lambda s: s["process"].update(args=[]), "must not be empty"),
        (lambda s: s["process"]["user"].update(uid=-1), "uint32"),
        (lambda s: s["process"]["user"].update(gid="0"), "uint32"),
        (lambda s: s["process"].update(terminal="yes"), "boolean"),
        (lambda s: s["mounts"].append({"source": "x"}), "'destination'"),
        (lambda s: s["linux"]["namespaces"].append({"type": "net"}), "bad 'net'"),
        (lambda s: s["linux"]["namespaces"].append({"type": "mount"}), "twice"),
        (lambda s: s["linux"].update(devices=[{"path": "/dev/x", "type": "x"}]), "bad type"),
        (lambda s: s["linux"].update(resources={"devices": [{"access": "rwm"}]}), "'allow'"),
        (lambda s: s["linux"].update(seccomp={"syscalls": []}), "'defaultAction'"),
        (
            lambda s: s["linux"].update(
                seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": []}]}
            ),
            "'action'",
        ),
        (lambda s: s["linux"].update(rootfsPropagation="sideways"), "sideways"),
        (lambda s: s.update(annotations={"a": 1}), "string"),
        (
            lambda s: s["linux"].update(
                resources={"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}
            ),
            "pageSize",
        ),
    ],
)
def test_checker_rejects_schema_violations(mutate: Any, fragment: str) -> None:
    spec = _valid_spec()
    mutate(spec)
    with pytest.raises(SpecShapeError, match=re.escape(fragment)):
        check_oci_spec(spec)
