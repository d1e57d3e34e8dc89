"""linux.seccomp: RuntimeDefault (crib's profile), Unconfined or a Localhost profile file.

Which profile, first match wins:

    privileged container                      none (CRI: "Seccomp restrictions are not applied")
    security_context.seccomp (the message)    its profile_type / localhost_ref
    security_context.seccomp_profile_path     "runtime/default" | "docker/default" |
      (deprecated string)                     "unconfined" | "localhost/<absolute path>"
    neither                                   none: the deprecated field documents "" as
                                              unconfined, and kubelet always sends the message

Profiles are written in the Docker/containers format (a superset of OCI linux.seccomp):
rules may be limited to capabilities, architectures or a minimum kernel, and `archMap`
lists sub-architectures per native architecture. `compile_profile` turns one into OCI
linux.seccomp for this container, the way moby's setupSeccomp does:

    excludes.arches contains the host arch       -> rule dropped
    excludes.caps: any one in the bounding set   -> rule dropped
    excludes.minKernel <= running kernel         -> rule dropped
    includes.arches lacks the host arch          -> rule dropped
    includes.caps: not all in the bounding set   -> rule dropped
    includes.minKernel > running kernel          -> rule dropped

so capabilities must be final before seccomp is compiled (with_capabilities runs first).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cri.api import api_pb2 as pb
from cri.specgen.errors import SeccompProfileError, SpecInvalidError
from cri.specgen.inputs import HostFacts, Spec, SpecInputs
from cri.specgen.security import CAPABILITIES, LOCALHOST_PREFIX

PROFILE_UNCONFINED = "unconfined"
PROFILE_RUNTIME_DEFAULT = "runtime/default"
# Larger than any real profile (the default is ~16 KiB) while bounding what is parsed.
MAX_PROFILE_BYTES = 1 << 20

ACTIONS = frozenset(
    {
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
)
OPERATORS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)
ARCHITECTURES = frozenset(
    {
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
    }
)
FLAGS = frozenset(
    {
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    }
)
# Host architecture (libseccomp's native names, as profiles spell includes.arches)
# -> the SCMP_ARCH_* value archMap is keyed by.
NATIVE_TO_SCMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsel": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}

_TOP_KEYS = frozenset(
    {
        "comment",
        "defaultAction",
        "defaultErrnoRet",
        "defaultErrno",  # containers-common writes the errno's name beside defaultErrnoRet
        "architectures",
        "archMap",
        "flags",
        "listenerPath",
        "listenerMetadata",
        "syscalls",
    }
)
_SYSCALL_KEYS = frozenset(
    {"comment", "name", "names", "action", "errnoRet", "errno", "args", "includes", "excludes"}
)
_FILTER_KEYS = frozenset({"caps", "arches", "minKernel"})
_ARG_KEYS = frozenset({"index", "value", "valueTwo", "op"})
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


def _fail(source: str, message: str) -> SeccompProfileError:
    return SeccompProfileError(f"seccomp profile {source}: {message}")


def _uint(value: Any, maximum: int, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _fail(source, f"{what} must be an integer from 0 to {maximum}, got {value!r}")
    return value


def _strings(value: Any, what: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(source, f"{what} must be a list of non-empty strings, got {value!r}")
    return value


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str, source: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _fail(source, f"unknown field {unknown[0]!r} in {where}")


def _parse_kernel(text: Any, source: str) -> tuple[int, int]:
    if not isinstance(text, str):
        raise _fail(source, f"minKernel must be a string like '4.8', got {text!r}")
    major, _, minor = text.partition(".")
    if not major.isdigit() or (minor and not minor.isdigit()):
        raise _fail(source, f"minKernel must be a string like '4.8', got {text!r}")
    return int(major), int(minor or 0)


def _validate_filter(value: Any, where: str, source: str) -> None:
    if not isinstance(value, dict):
        raise _fail(source, f"{where} must be an object")
    _check_keys(value, _FILTER_KEYS, where, source)
    if "caps" in value:
        for cap in _strings(value["caps"], f"{where}.caps", source):
            if cap not in CAPABILITIES:
                raise _fail(source, f"{where}.caps names unknown capability {cap!r}")
    if "arches" in value:
        _strings(value["arches"], f"{where}.arches", source)
    if value.get("minKernel") is not None:
        _parse_kernel(value["minKernel"], source)


def _validate_syscall(rule: Any, position: int, source: str) -> None:
    where = f"syscalls[{position}]"
    if not isinstance(rule, dict):
        raise _fail(source, f"{where} must be an object")
    _check_keys(rule, _SYSCALL_KEYS, where, source)
    if "name" in rule and "names" in rule:
        raise _fail(source, f"{where} has both 'name' and 'names'")
    if "name" in rule:
        if not isinstance(rule["name"], str) or not rule["name"]:
            raise _fail(source, f"{where}.name must be a non-empty string")
    elif not _strings(rule.get("names"), f"{where}.names", source):
        raise _fail(source, f"{where}.names is empty")
    if rule.get("action") not in ACTIONS:
        raise _fail(source, f"{where}.action {rule.get('action')!r} is not a seccomp action")
    if rule.get("errnoRet") is not None:
        _uint(rule["errnoRet"], _UINT32_MAX, f"{where}.errnoRet", source)
    args = rule.get("args")
    if args is None:
        args = []
    elif not isinstance(args, list):
        raise _fail(source, f"{where}.args must be a list")
    for number, arg in enumerate(args):
        arg_where = f"{where}.args[{number}]"
        if not isinstance(arg, dict):
            raise _fail(source, f"{arg_where} must be an object")
        _check_keys(arg, _ARG_KEYS, arg_where, source)
        # A syscall has at most six arguments (seccomp(2), struct seccomp_data.args[6]).
        _uint(arg.get("index"), 5, f"{arg_where}.index", source)
        _uint(arg.get("value"), _UINT64_MAX, f"{arg_where}.value", source)
        if arg.get("valueTwo") is not None:
            _uint(arg["valueTwo"], _UINT64_MAX, f"{arg_where}.valueTwo", source)
        if arg.get("op") not in OPERATORS:
            raise _fail(source, f"{arg_where}.op {arg.get('op')!r} is not a seccomp operator")
    for key in ("includes", "excludes"):
        if rule.get(key) is not None:
            _validate_filter(rule[key], f"{where}.{key}", source)


def validate_profile(profile: Any, source: str) -> dict[str, Any]:
    """Check a parsed profile against the format's rules; return it unchanged."""
    if not isinstance(profile, dict):
        raise _fail(source, "must be a JSON object")
    _check_keys(profile, _TOP_KEYS, "the profile", source)
    default_action = profile.get("defaultAction")
    if default_action not in ACTIONS:
        raise _fail(source, f"defaultAction {default_action!r} is not a seccomp action")
    if default_action == "SCMP_ACT_NOTIFY":
        raise _fail(source, "SCMP_ACT_NOTIFY cannot be the default action")
    if profile.get("defaultErrnoRet") is not None:
        _uint(profile["defaultErrnoRet"], _UINT32_MAX, "defaultErrnoRet", source)
    for key in ("architectures", "archMap", "flags", "syscalls"):
        if profile.get(key) is not None and not isinstance(profile[key], list):
            raise _fail(source, f"{key} must be a list")
    if profile.get("architectures") and profile.get("archMap"):
        raise _fail(source, "has both 'architectures' and 'archMap'; use one")
    for arch in profile.get("architectures") or []:
        if arch not in ARCHITECTURES:
            raise _fail(source, f"architecture {arch!r} is unknown")
    for entry in profile.get("archMap") or []:
        if not isinstance(entry, dict):
            raise _fail(source, "archMap entries must be objects")
        _check_keys(entry, frozenset({"architecture", "subArchitectures"}), "archMap", source)
        for arch in [entry.get("architecture"), *(entry.get("subArchitectures") or [])]:
            if arch not in ARCHITECTURES:
                raise _fail(source, f"archMap architecture {arch!r} is unknown")
    for flag in profile.get("flags") or []:
        if flag not in FLAGS:
            raise _fail(source, f"flag {flag!r} is unknown")
    syscalls = profile.get("syscalls") or []
    for position, rule in enumerate(syscalls):
        _validate_syscall(rule, position, source)
    notify = any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in syscalls)
    if notify and not profile.get("listenerPath"):
        raise _fail(source, "SCMP_ACT_NOTIFY rules need a listenerPath")
    return profile


def load_profile(data: bytes, source: str) -> dict[str, Any]:
    """Parse and validate a profile file's bytes; `source` names it in errors."""
    if len(data) > MAX_PROFILE_BYTES:
        raise _fail(source, f"is larger than {MAX_PROFILE_BYTES} bytes")
    try:
        profile = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise _fail(source, f"is not valid JSON: {err}") from err
    return validate_profile(profile, source)


@functools.cache
def _default_profile_text() -> str:
    return (importlib.resources.files("cri.specgen") / "seccomp_default.json").read_text()


def default_profile() -> dict[str, Any]:
    """crib's RuntimeDefault profile (a fresh copy: callers may change it)."""
    profile: dict[str, Any] = json.loads(_default_profile_text())
    return profile


def _filter_applies(rule: Mapping[str, Any], caps: frozenset[str], host: HostFacts) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if host.arch in (excludes.get("arches") or []):
        return False
    if any(cap in caps for cap in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and host.kernel_version >= _parse_kernel(
        excludes["minKernel"], "excludes"
    ):
        return False
    if includes.get("arches") and host.arch not in includes["arches"]:
        return False
    if not all(cap in caps for cap in includes.get("caps") or []):
        return False
    return not (
        includes.get("minKernel")
        and host.kernel_version < _parse_kernel(includes["minKernel"], "includes")
    )


def compile_profile(
    profile: Mapping[str, Any], bounding_caps: Iterable[str], host: HostFacts
) -> dict[str, Any]:
    """OCI linux.seccomp for a container with `bounding_caps` on `host` (module docstring)."""
    caps = frozenset(bounding_caps)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    else:
        native = NATIVE_TO_SCMP.get(host.arch)
        for entry in profile.get("archMap") or []:
            if entry["architecture"] == native:
                out["architectures"] = [native, *(entry.get("subArchitectures") or [])]
                break
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key] if isinstance(profile[key], str) else list(profile[key])
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _filter_applies(rule, caps, host):
            continue
        compiled: dict[str, Any] = {
            "names": [rule["name"]] if "name" in rule else list(rule["names"]),
            "action": rule["action"],
        }
        if rule.get("errnoRet") is not None:
            compiled["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            compiled["args"] = [
                {
                    "index": arg["index"],
                    "value": arg["value"],
                    **({"valueTwo": arg["valueTwo"]} if arg.get("valueTwo") else {}),
                    "op": arg["op"],
                }
                for arg in rule["args"]
            ]
        syscalls.append(compiled)
    out["syscalls"] = syscalls
    return out


def seccomp_request(inputs: SpecInputs) -> tuple[int, str] | None:
    """(profile type, localhost path) asked for; None means unconfined by omission."""
    sc = inputs.security_context
    if sc.HasField("seccomp"):
        profile = sc.seccomp
        if profile.profile_type != pb.SecurityProfile.Localhost and profile.localhost_ref:
            raise SpecInvalidError("seccomp localhost_ref is set but profile_type is not Localhost")
        return profile.profile_type, profile.localhost_ref.removeprefix(LOCALHOST_PREFIX)
    legacy = sc.seccomp_profile_path
    if not legacy:
        return None
    if legacy in (PROFILE_RUNTIME_DEFAULT, "docker/default"):
        return pb.SecurityProfile.RuntimeDefault, ""
    if legacy == PROFILE_UNCONFINED:
        return pb.SecurityProfile.Unconfined, ""
    if legacy.startswith(LOCALHOST_PREFIX):
        return pb.SecurityProfile.Localhost, legacy.removeprefix(LOCALHOST_PREFIX)
    raise SpecInvalidError(
        f"seccomp_profile_path {legacy!r} is not runtime/default, unconfined or "
        "localhost/<absolute path>"
    )


def seccomp_profile_name(inputs: SpecInputs) -> str:
    """ "unconfined", "runtime/default" or "localhost/<path>": what with_seccomp applies."""
    if inputs.privileged:
        return PROFILE_UNCONFINED
    request = seccomp_request(inputs)
    if request is None or request[0] == pb.SecurityProfile.Unconfined:
        return PROFILE_UNCONFINED
    if request[0] == pb.SecurityProfile.RuntimeDefault:
        return PROFILE_RUNTIME_DEFAULT
    return LOCALHOST_PREFIX + request[1]


def with_seccomp(spec: Spec, inputs: SpecInputs) -> Spec:
    """linux.seccomp for the requested profile, compiled against the final capabilities."""
    spec["linux"].pop("seccomp", None)
    if inputs.privileged:
        return spec
    request = seccomp_request(inputs)
    if request is None or request[0] == pb.SecurityProfile.Unconfined:
        return spec
    profile_type, path = request
    if profile_type == pb.SecurityProfile.RuntimeDefault:
        profile = default_profile()
    elif profile_type == pb.SecurityProfile.Localhost:
        if not path.startswith("/"):
            raise SpecInvalidError(
                f"seccomp localhost profile {path!r} must be an absolute path on the node"
            )
        try:
            data = inputs.host.read_seccomp_profile(path)
        except FileNotFoundError:
            raise SeccompProfileError(f"seccomp profile {path} does not exist") from None
        except OSError as err:
            raise SeccompProfileError(f"seccomp profile {path}: {err.strerror}") from err
        profile = load_profile(data, path)
    else:
        raise SpecInvalidError(f"seccomp profile_type {profile_type} is unknown")
    bounding = spec["process"].get("capabilities", {}).get("bounding", [])
    spec["linux"]["seccomp"] = compile_profile(profile, bounding, inputs.host)
    return spec
