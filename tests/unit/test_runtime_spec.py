"""Parsing and validation of config.json, exec process files and update resources."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sandbox.oci.spec import (
    SpecError,
    SpecNotFoundError,
    load_spec,
    namespace_paths,
    parse_process,
    parse_resources,
    parse_spec,
)
from tests.rootfs import base_spec


def parse(spec: dict[str, Any]) -> Any:
    return parse_spec(json.dumps(spec))


def error_of(spec: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        parse(spec)
    return str(caught.value)


def test_runc_spec_parses() -> None:
    spec = parse(base_spec())
    assert spec["process"]["args"] == ["/bin/probe"]
    assert namespace_paths(spec)["network"] is None


def test_invalid_json_names_the_file() -> None:
    with pytest.raises(SpecError, match=r"config.json: invalid JSON"):
        parse_spec("{nope")


def test_missing_config_json(tmp_path: Any) -> None:
    with pytest.raises(SpecNotFoundError, match=r"config\.json not found"):
        load_spec(str(tmp_path))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: s["linux"]["namespaces"].append({"type": "bogus"}),
            'linux.namespaces[6].type: unknown namespace type "bogus"',
        ),
        (
            lambda s: s["linux"]["namespaces"].append({"type": "pid"}),
            'linux.namespaces[6].type: duplicate namespace "pid"',
        ),
        (
            lambda s: s["linux"]["namespaces"].append({"type": "time", "path": "rel/x"}),
            'linux.namespaces[6].path: not absolute: "rel/x"',
        ),
        (lambda s: s["process"].update(args=[]), "process.args: must not be empty"),
        (lambda s: s["process"].update(args="sh"), 'process.args: must be a list, got "sh"'),
        (lambda s: s["process"].update(cwd="tmp"), 'process.cwd: not absolute: "tmp"'),
        (lambda s: s["process"]["user"].update(uid="0"), "process.user.uid: must be an integer"),
        (lambda s: s["process"]["user"].update(uid=True), "process.user.uid: must be an integer"),
        (lambda s: s["process"].update(env=["NOEQUALS"]), "process.env[0]: not KEY=VALUE"),
        (
            lambda s: s["process"]["rlimits"].append(
                {"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}
            ),
            'unknown rlimit "RLIMIT_BOGUS"',
        ),
        (
            lambda s: s["process"]["rlimits"].__setitem__(
                0, {"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}
            ),
            "soft limit above hard limit",
        ),
        (
            lambda s: s["mounts"].append({"destination": "relative"}),
            'mounts[7].destination: not absolute: "relative"',
        ),
        (
            lambda s: s["linux"].update(rootfsPropagation="sideways"),
            'unknown propagation "sideways"',
        ),
        (lambda s: s["linux"].update(sysctl={"kernel/../x": "1"}), "invalid key"),
        (
            lambda s: s["linux"].update(sysctl={"net.ipv4.ip_forward=1+kernel.x": "1"}),
            "invalid key",
        ),
        (
            lambda s: s["linux"].update(namespaces=[{"type": "pid"}]),
            "a mount namespace is required",
        ),
        (
            lambda s: s["linux"]["namespaces"].append({"type": "user"}),
            "a new user namespace needs uid and gid mappings",
        ),
        (
            lambda s: s["linux"].update(timeOffsets={"monotonic": {"secs": 1}}),
            "time offsets need a time namespace",
        ),
        (lambda s: s.pop("root"), "root.path: missing"),
        (
            lambda s: s["linux"]["resources"].update(memory={"limit": "1G"}),
            "linux.resources.memory.limit: must be an integer",
        ),
    ],
)
def test_validation_names_the_field(mutate: Any, message: str) -> None:
    spec = base_spec()
    mutate(spec)
    assert message in error_of(spec)


def test_null_means_absent() -> None:
    spec = base_spec()
    spec["linux"]["seccomp"] = None
    spec["process"]["rlimits"] = None
    parsed = parse(spec)
    assert "seccomp" not in parsed["linux"]
    assert "rlimits" not in parsed["process"]


def test_unknown_fields_are_ignored() -> None:
    spec = base_spec()
    spec["linux"]["intelRdt"] = {"closID": "x"}
    spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    parse(spec)


def test_exec_process_file() -> None:
    process = copy.deepcopy(base_spec()["process"])
    assert parse_process(json.dumps(process))["args"] == ["/bin/probe"]
    process["args"] = []
    with pytest.raises(SpecError, match=r"process\.args: must not be empty"):
        parse_process(json.dumps(process))


def test_update_resources() -> None:
    resources = parse_resources(b'{"memory": {"limit": 1048576}, "pids": {"limit": 5}}')
    assert resources["memory"]["limit"] == 1048576
    assert parse_resources(b"  ") == {}
    with pytest.raises(SpecError, match=r"resources.cpu.shares: must be an integer"):
        parse_resources(b'{"cpu": {"shares": "lots"}}')
