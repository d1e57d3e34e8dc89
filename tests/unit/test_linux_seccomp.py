"""seccomp profiles: resolution to rules (pure) and compilation to BPF by libseccomp."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from sandbox.linux import seccomp

PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "crt_no_such_call"], "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
        },
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}


def test_compile_resolves_actions_and_conditions() -> None:
    profile = seccomp.compile_profile(PROFILE)
    assert profile["default_action"] == seccomp.SCMP_ACT_ERRNO | 38
    assert profile["architectures"] == ["x86_64", "x86", "x32"]
    names = [rule["name"] for rule in profile["rules"]]
    # ptrace repeats the default action: libseccomp would reject it, so it is dropped.
    assert names == ["read", "write", "exit_group", "crt_no_such_call", "personality", "mkdir"]
    personality = profile["rules"][4]
    assert personality["conditions"] == [(0, 4, 8, 0)]
    assert profile["rules"][5]["action"] == seccomp.SCMP_ACT_ERRNO | 1


def test_errno_defaults_to_eperm() -> None:
    assert seccomp.action_value("SCMP_ACT_ERRNO", None, "x") == seccomp.SCMP_ACT_ERRNO | 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(defaultAction="SCMP_ACT_EXPLODE"), 'unknown action "SCMP_ACT_EXPLODE"'),
        (lambda p: p.update(defaultAction="SCMP_ACT_NOTIFY"), "needs a seccomp agent"),
        (lambda p: p.update(architectures=["X86"]), 'unknown architecture "X86"'),
        (lambda p: p.update(flags=["SECCOMP_FILTER_FLAG_BOGUS"]), "unknown flag"),
        (
            lambda p: p["syscalls"][1]["args"][0].update(op="SCMP_CMP_ABOUT"),
            r'linux\.seccomp\.syscalls\[1\]\.args\[0\]\.op: unknown operator "SCMP_CMP_ABOUT"',
        ),
    ],
)
def test_bad_profiles_name_the_field(mutate: Any, message: str) -> None:
    import copy

    profile = copy.deepcopy(PROFILE)
    mutate(profile)
    with pytest.raises(seccomp.SeccompError, match=message):
        seccomp.compile_profile(profile)


def bpf_of(profile: dict[str, Any]) -> tuple[bytes, list[str]]:
    seccomp_filter, skipped = seccomp.build(seccomp.compile_profile(profile))
    try:
        with tempfile.TemporaryFile() as out:
            seccomp_filter.export_bpf(out.fileno())
            out.seek(0)
            return out.read(), skipped
    finally:
        seccomp_filter.close()


def test_libseccomp_compiles_to_bpf() -> None:
    program, skipped = bpf_of(PROFILE)
    assert skipped == ["crt_no_such_call"]
    assert len(program) % 8 == 0  # struct sock_filter is 8 bytes
    assert len(program) > 8 * 10
    # The default action (ERRNO|38) appears as a BPF return constant.
    assert (seccomp.SCMP_ACT_ERRNO | 38).to_bytes(4, "little") in program


def test_more_rules_make_a_longer_program() -> None:
    small, _ = bpf_of({"defaultAction": "SCMP_ACT_ALLOW"})
    big, _ = bpf_of(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "rmdir", "unlink"], "action": "SCMP_ACT_ERRNO"}],
        }
    )
    assert len(big) > len(small)
    assert os.path.exists("/proc/self/status")
