"""linux.seccomp: profile selection, the default profile, compilation and validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SeccompProfileError, SpecInvalidError
from cri.specgen.seccomp import (
    MAX_PROFILE_BYTES,
    compile_profile,
    default_profile,
    load_profile,
    seccomp_profile_name,
    validate_profile,
    with_seccomp,
)
from cri.specgen.security import DEFAULT_CAPABILITIES, with_capabilities
from tests.unit.test_specgen_support import (
    container_config,
    empty_spec,
    fake_host,
    make_inputs,
    sandbox_config,
)

RUNTIME_DEFAULT = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
UNCONFINED = pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)
LOCAL_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def seccomp_for(*, privileged: bool = False, add: list[str] | None = None, **overrides: Any) -> Any:
    security = {k: overrides.pop(k) for k in ("seccomp", "seccomp_profile_path") if k in overrides}
    config = container_config(
        privileged=privileged, capabilities=pb.Capability(add_capabilities=add or []), **security
    )
    inputs = make_inputs(config, sandbox_config(privileged=privileged), **overrides)
    spec = with_seccomp(with_capabilities(empty_spec(), inputs), inputs)
    return spec["linux"].get("seccomp"), seccomp_profile_name(inputs)


def allowed_names(seccomp: dict[str, Any]) -> set[str]:
    return {
        name
        for rule in seccomp["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
        for name in rule["names"]
    }


def test_no_profile_asked_is_unconfined() -> None:
    assert seccomp_for() == (None, "unconfined")


def test_unconfined() -> None:
    assert seccomp_for(seccomp=UNCONFINED) == (None, "unconfined")


def test_privileged_is_never_filtered() -> None:
    assert seccomp_for(privileged=True, seccomp=RUNTIME_DEFAULT) == (None, "unconfined")


@pytest.mark.parametrize(
    "security",
    [
        {"seccomp": RUNTIME_DEFAULT},
        {"seccomp_profile_path": "runtime/default"},
        {"seccomp_profile_path": "docker/default"},
    ],
)
def test_runtime_default(security: dict[str, Any]) -> None:
    seccomp, name = seccomp_for(**security)
    assert name == "runtime/default"
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_message_wins_over_the_deprecated_path() -> None:
    seccomp, name = seccomp_for(seccomp=UNCONFINED, seccomp_profile_path="runtime/default")
    assert (seccomp, name) == (None, "unconfined")


def test_default_profile_allows_ordinary_calls_and_blocks_dangerous_ones() -> None:
    seccomp, _ = seccomp_for(seccomp=RUNTIME_DEFAULT)
    allowed = allowed_names(seccomp)
    assert {"read", "write", "execve", "openat", "futex", "chroot", "arch_prctl"} <= allowed
    assert not {"mount", "umount2", "unshare", "setns", "bpf", "reboot", "init_module"} & allowed
    assert not {"keyctl", "add_key", "kexec_load", "open_by_handle_at", "swapon"} & allowed
    clone3 = [r for r in seccomp["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    clone = [r for r in seccomp["syscalls"] if r["names"] == ["clone"]]
    assert clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"


def test_default_profile_follows_capabilities() -> None:
    seccomp, _ = seccomp_for(seccomp=RUNTIME_DEFAULT, add=["SYS_ADMIN", "SYS_PTRACE", "SYS_TIME"])
    allowed = allowed_names(seccomp)
    assert {"mount", "unshare", "setns", "clone", "clone3", "kcmp", "settimeofday"} <= allowed
    assert not [r for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ERRNO"]


def test_default_profile_follows_the_kernel_and_the_architecture() -> None:
    old, _ = seccomp_for(seccomp=RUNTIME_DEFAULT, host=fake_host(kernel_version=(4, 4)))
    assert "ptrace" not in allowed_names(old)
    new, _ = seccomp_for(seccomp=RUNTIME_DEFAULT)
    assert "ptrace" in allowed_names(new)
    arm, _ = seccomp_for(seccomp=RUNTIME_DEFAULT, host=fake_host(arch="arm64"))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arm_fadvise64_64" in allowed_names(arm)
    assert "arch_prctl" not in allowed_names(arm)
    s390, _ = seccomp_for(seccomp=RUNTIME_DEFAULT, host=fake_host(arch="s390x"))
    clone = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert [r["args"][0]["index"] for r in clone] == [1]


def test_default_profile_file_is_valid_and_fresh_each_time() -> None:
    profile = default_profile()
    validate_profile(profile, "default")
    profile["syscalls"].clear()
    assert default_profile()["syscalls"]


def local_host(files: dict[str, bytes]) -> Any:
    def read(path: str) -> bytes:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    return fake_host(read_seccomp_profile=read)


@pytest.mark.parametrize(
    "security",
    [
        {
            "seccomp": pb.SecurityProfile(
                profile_type=pb.SecurityProfile.Localhost, localhost_ref="/etc/seccomp/mkdir.json"
            )
        },
        {"seccomp_profile_path": "localhost//etc/seccomp/mkdir.json"},
    ],
)
def test_localhost_profile_is_read_through_the_host_seam(security: dict[str, Any]) -> None:
    host = local_host({"/etc/seccomp/mkdir.json": json.dumps(LOCAL_PROFILE).encode()})
    seccomp, name = seccomp_for(host=host, **security)
    assert name == "localhost//etc/seccomp/mkdir.json"
    assert seccomp == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }


def test_localhost_profile_errors() -> None:
    host = local_host({"/bad.json": b"{not json"})
    missing = pb.SecurityProfile(
        profile_type=pb.SecurityProfile.Localhost, localhost_ref="/nope.json"
    )
    with pytest.raises(SeccompProfileError, match=r"seccomp profile /nope\.json does not exist"):
        seccomp_for(seccomp=missing, host=host)
    bad = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="/bad.json")
    with pytest.raises(SeccompProfileError, match=r"/bad\.json: is not valid JSON"):
        seccomp_for(seccomp=bad, host=host)
    relative = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="p.json")
    with pytest.raises(SpecInvalidError, match="must be an absolute path on the node"):
        seccomp_for(seccomp=relative, host=host)
    stray = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault, localhost_ref="/x")
    with pytest.raises(SpecInvalidError, match="localhost_ref is set but profile_type"):
        seccomp_for(seccomp=stray)
    with pytest.raises(SpecInvalidError, match="seccomp_profile_path 'strict'"):
        seccomp_for(seccomp_profile_path="strict")


def test_compile_filters_by_caps_arches_and_kernel() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"name": "a", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["e"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
            {"names": ["f"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
            {
                "names": ["g"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 2, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["h"],
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_CHOWN", "CAP_KILL"]},
            },
        ],
    }
    host = fake_host(kernel_version=(6, 1))
    compiled = compile_profile(profile, ["CAP_CHOWN"], host)
    assert compiled == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["g"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    admin = compile_profile(profile, ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_KILL"], host)
    assert [r["names"] for r in admin["syscalls"]] == [["a"], ["g"], ["h"]]


def test_compile_passes_flags_listener_and_explicit_architectures() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_AARCH64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}],
    }
    compiled = compile_profile(validate_profile(profile, "t"), [], fake_host())
    assert compiled["architectures"] == ["SCMP_ARCH_AARCH64"]
    assert compiled["flags"] == ["SECCOMP_FILTER_FLAG_LOG"]
    assert compiled["listenerPath"] == "/run/agent.sock"


def test_containers_common_style_profile_loads() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "defaultErrno": "ENOSYS",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None}],
        "syscalls": [
            {
                "names": ["bdflush"],
                "action": "SCMP_ACT_ERRNO",
                "args": [],
                "comment": "",
                "includes": {},
                "excludes": {},
                "errnoRet": 1,
                "errno": "EPERM",
            }
        ],
    }
    compiled = compile_profile(load_profile(json.dumps(profile).encode(), "cc"), [], fake_host())
    assert compiled["architectures"] == ["SCMP_ARCH_X86_64"]
    assert compiled["defaultErrnoRet"] == 38


@pytest.mark.parametrize(
    ("profile", "fragment"),
    [
        ([], "must be a JSON object"),
        ({"defaultAction": "ALLOW"}, "defaultAction 'ALLOW'"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "cannot be the default action"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultaction": 1}, "unknown field 'defaultaction'"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86"],
                "archMap": [{}],
            },
            "both 'architectures' and 'archMap'",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86"]}, "architecture 'x86'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["FAST"]}, "flag 'FAST'"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": -1}, "defaultErrnoRet"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "syscalls must be a list"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "X"}]},
            "syscalls[0].action 'X'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}],
            },
            "syscalls[0].names is empty",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_LOG"}],
            },
            "both 'name' and 'names'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["a"],
                        "action": "SCMP_ACT_LOG",
                        "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "args[0].index",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["a"],
                        "action": "SCMP_ACT_LOG",
                        "args": [{"index": 0, "value": 0, "op": "EQ"}],
                    }
                ],
            },
            "args[0].op 'EQ'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["a"], "action": "SCMP_ACT_NOTIFY"}],
            },
            "need a listenerPath",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_FLY"]}}
                ],
            },
            "unknown capability 'CAP_FLY'",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_LOG", "excludes": {"minKernel": "six"}}
                ],
            },
            "minKernel",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["a"], "action": "SCMP_ACT_LOG", "includes": {"os": "x"}}],
            },
            "unknown field 'os'",
        ),
    ],
)
def test_invalid_profiles_are_refused_with_the_reason(profile: Any, fragment: str) -> None:
    with pytest.raises(SeccompProfileError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_profile(json.dumps(profile).encode(), "/p.json")


def test_oversized_profile_is_refused() -> None:
    with pytest.raises(SeccompProfileError, match="is larger than"):
        load_profile(b" " * (MAX_PROFILE_BYTES + 1), "/big.json")


def test_default_capabilities_see_the_chroot_rule() -> None:
    assert "CAP_SYS_CHROOT" in DEFAULT_CAPABILITIES
