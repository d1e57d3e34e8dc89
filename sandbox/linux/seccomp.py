"""seccomp filters from the spec's `linux.seccomp`, compiled by libseccomp.

`compile_profile()` is pure: it resolves actions, architectures, syscall names and argument
comparisons into a `Profile` (rules as plain tuples) that unit tests inspect. `build()`
turns a profile into a libseccomp filter, which is either loaded (`seccomp_load(3)`, in the
container's init) or exported as BPF (tests). Syscall names the running architecture lacks
are skipped, as runc does, so one profile serves several kernels.
"""

from __future__ import annotations

from typing import Any, TypedDict

from common.errors import InvalidArgumentError
from sandbox.linux import syscalls

# seccomp.h SCMP_ACT_*; ERRNO and TRACE carry a 16-bit value in the low bits.
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_TRACE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_NOTIFY = 0x7FC00000

EPERM = 1

COMPARE_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

KNOWN_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
)


class SeccompError(InvalidArgumentError):
    """The seccomp section names an unknown action, operator, architecture or flag."""


class Rule(TypedDict):
    """One libseccomp rule: action, syscall name and (arg, op, value, valueTwo) conditions."""

    action: int
    name: str
    conditions: list[tuple[int, int, int, int]]


class Profile(TypedDict):
    """A compiled `linux.seccomp`."""

    default_action: int
    architectures: list[str]
    flags: list[str]
    rules: list[Rule]


def action_value(name: str, errno_ret: int | None, where: str) -> int:
    """The libseccomp action for an OCI action name (`SCMP_ACT_ERRNO` defaults to EPERM)."""
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return SCMP_ACT_TRACE | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    table = {
        "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
        "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
        "SCMP_ACT_LOG": SCMP_ACT_LOG,
        "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW,
    }
    if name not in table:
        if name == "SCMP_ACT_NOTIFY":
            raise SeccompError(f'{where}: action "{name}" needs a seccomp agent, not supported')
        raise SeccompError(f'{where}: unknown action "{name}"')
    return table[name]


def arch_name(oci_name: str) -> str:
    """libseccomp's name for an OCI architecture (`SCMP_ARCH_X86_64` -> `x86_64`)."""
    if not oci_name.startswith("SCMP_ARCH_"):
        raise SeccompError(f'linux.seccomp.architectures: unknown architecture "{oci_name}"')
    return oci_name[len("SCMP_ARCH_") :].lower()


def compile_profile(seccomp: Any) -> Profile:
    """Resolve a spec's `linux.seccomp` into a `Profile`; raises SeccompError naming the field."""
    default_action = action_value(
        seccomp.get("defaultAction", ""),
        seccomp.get("defaultErrnoRet"),
        "linux.seccomp.defaultAction",
    )
    flags = list(seccomp.get("flags", []))
    for flag in flags:
        if flag not in KNOWN_FLAGS:
            raise SeccompError(f'linux.seccomp.flags: unknown flag "{flag}"')
    architectures = [arch_name(a) for a in seccomp.get("architectures", [])]
    rules: list[Rule] = []
    for index, syscall in enumerate(seccomp.get("syscalls", [])):
        where = f"linux.seccomp.syscalls[{index}]"
        action = action_value(syscall.get("action", ""), syscall.get("errnoRet"), f"{where}.action")
        conditions = []
        for arg_index, arg in enumerate(syscall.get("args", [])):
            op = arg.get("op", "")
            if op not in COMPARE_OPS:
                raise SeccompError(f'{where}.args[{arg_index}].op: unknown operator "{op}"')
            conditions.append(
                (arg.get("index", 0), COMPARE_OPS[op], arg.get("value", 0), arg.get("valueTwo", 0))
            )
        if action == default_action:
            continue  # libseccomp rejects rules that repeat the default action
        for name in syscall.get("names", []):
            rules.append(Rule(action=action, name=name, conditions=conditions))
    return Profile(
        default_action=default_action, architectures=architectures, flags=flags, rules=rules
    )


def build(profile: Profile) -> tuple[syscalls.SeccompFilter, list[str]]:
    """A libseccomp filter for `profile`, and the syscall names skipped as unknown here."""
    seccomp_filter = syscalls.SeccompFilter(profile["default_action"])
    skipped: list[str] = []
    try:
        # crib sets no_new_privs itself when the spec asks; libseccomp must not force it,
        # and a foreign architecture's syscalls get the default action (runc's settings).
        seccomp_filter.set_attr(syscalls.SCMP_FLTATR_CTL_NNP, 0)
        if "SECCOMP_FILTER_FLAG_LOG" in profile["flags"]:
            seccomp_filter.set_attr(syscalls.SCMP_FLTATR_CTL_LOG, 1)
        if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in profile["flags"]:
            seccomp_filter.set_attr(syscalls.SCMP_FLTATR_CTL_SSB, 1)
        for name in profile["architectures"]:
            token = syscalls.seccomp_arch_resolve_name(name)
            if token == 0:
                raise SeccompError(f'linux.seccomp.architectures: unknown architecture "{name}"')
            seccomp_filter.add_arch(token, name)
        for rule in profile["rules"]:
            number = syscalls.seccomp_syscall_resolve_name(rule["name"])
            if number < 0:
                if rule["name"] not in skipped:
                    skipped.append(rule["name"])
                continue
            try:
                seccomp_filter.add_rule(rule["action"], number, rule["conditions"], rule["name"])
            except OSError as err:
                if err.errno == 17:  # EEXIST: the same rule twice is harmless
                    continue
                raise
    except BaseException:
        seccomp_filter.close()
        raise
    return seccomp_filter, skipped


def load(profile: Profile) -> list[str]:
    """Build and install `profile` on the calling process; returns skipped syscall names."""
    seccomp_filter, skipped = build(profile)
    try:
        seccomp_filter.load()
    finally:
        seccomp_filter.close()
    return skipped
