"""linux.namespaces per pod and container namespace modes."""

from __future__ import annotations

from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SpecInputError, SpecInvalidError, SpecUnsupportedError
from cri.specgen.namespaces import with_namespaces
from tests.unit.test_specgen_support import (
    NAMESPACE_PINS,
    container_config,
    empty_spec,
    fake_host,
    make_inputs,
    sandbox_config,
)

PINS_WITH_PID = {**NAMESPACE_PINS, "pid": "/run/crib/ns/pid/sandbox-1"}


def namespaces_of(
    *, pod: dict[str, int] | None = None, pid: int = pb.CONTAINER, **overrides: Any
) -> list[dict[str, str]]:
    sandbox = sandbox_config(**(pod or {}))
    ns = sandbox.linux.security_context.namespace_options
    config = container_config(
        namespace_options=pb.NamespaceOption(
            network=ns.network, ipc=ns.ipc, pid=pid, target_id=overrides.pop("target_id", "")
        )
    )
    spec = with_namespaces(empty_spec(), make_inputs(config, sandbox, **overrides))
    return list(spec["linux"]["namespaces"])


def test_regular_pod_joins_net_uts_ipc_and_gets_own_pid_and_mount() -> None:
    assert namespaces_of() == [
        {"type": "network", "path": "/run/crib/ns/net/sandbox-1"},
        {"type": "uts", "path": "/run/crib/ns/uts/sandbox-1"},
        {"type": "ipc", "path": "/run/crib/ns/ipc/sandbox-1"},
        {"type": "pid"},
        {"type": "mount"},
    ]


def test_host_network_means_no_network_and_no_uts_entry() -> None:
    types = [
        ns["type"] for ns in namespaces_of(pod={"network": pb.NODE}, namespace_paths={"ipc": "/i"})
    ]
    assert types == ["ipc", "pid", "mount"]


def test_host_ipc_means_no_ipc_entry() -> None:
    types = [ns["type"] for ns in namespaces_of(pod={"ipc": pb.NODE})]
    assert types == ["network", "uts", "pid", "mount"]


def test_pid_pod_joins_the_pod_pid_pin() -> None:
    found = namespaces_of(pod={"pid": pb.POD}, pid=pb.POD, namespace_paths=PINS_WITH_PID)
    assert {"type": "pid", "path": "/run/crib/ns/pid/sandbox-1"} in found


def test_pid_pod_in_a_pod_without_shared_pid_is_refused() -> None:
    with pytest.raises(SpecInvalidError, match="needs a pod that shares its pid namespace"):
        namespaces_of(pid=pb.POD)


def test_pid_node_uses_the_host() -> None:
    assert all(ns["type"] != "pid" for ns in namespaces_of(pid=pb.NODE))


def test_pid_target_joins_the_target_process() -> None:
    found = namespaces_of(pid=pb.TARGET, target_id="container-0", target_pid=4242)
    assert {"type": "pid", "path": "/proc/4242/ns/pid"} in found


def test_pid_target_needs_a_target_id_and_a_pid() -> None:
    with pytest.raises(SpecInvalidError, match=r"needs namespace_options\.target_id"):
        namespaces_of(pid=pb.TARGET, target_pid=4242)
    with pytest.raises(SpecInputError, match="no pid given for target container container-0"):
        namespaces_of(pid=pb.TARGET, target_id="container-0")


def test_missing_pin_is_an_internal_error_naming_the_kind() -> None:
    with pytest.raises(SpecInputError, match="sandbox sandbox-1 has no net namespace pin"):
        namespaces_of(namespace_paths={"ipc": "/i", "uts": "/u"})


def test_cgroup_namespace_on_cgroup_v2_unless_privileged() -> None:
    v2 = fake_host(cgroup_v2=True)
    assert {"type": "cgroup"} in namespaces_of(host=v2)
    assert {"type": "cgroup"} not in namespaces_of()
    config = container_config(privileged=True)
    spec = with_namespaces(
        empty_spec(), make_inputs(config, sandbox_config(privileged=True), host=v2)
    )
    assert {"type": "cgroup"} not in spec["linux"]["namespaces"]


def test_pod_user_namespace_joins_the_pin_with_mappings() -> None:
    userns = pb.UserNamespace(
        mode=pb.POD,
        uids=[pb.IDMapping(host_id=100000, container_id=0, length=65536)],
        gids=[pb.IDMapping(host_id=200000, container_id=0, length=65536)],
    )
    config = container_config(
        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER, userns_options=userns)
    )
    pins = {**NAMESPACE_PINS, "user": "/run/crib/ns/user/sandbox-1"}
    spec = with_namespaces(empty_spec(), make_inputs(config, namespace_paths=pins))
    assert {"type": "user", "path": "/run/crib/ns/user/sandbox-1"} in spec["linux"]["namespaces"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_node_user_namespace_adds_nothing() -> None:
    config = container_config(
        namespace_options=pb.NamespaceOption(
            pid=pb.CONTAINER, userns_options=pb.UserNamespace(mode=pb.NODE)
        )
    )
    spec = with_namespaces(empty_spec(), make_inputs(config))
    assert all(ns["type"] != "user" for ns in spec["linux"]["namespaces"])
    assert "uidMappings" not in spec["linux"]


def test_container_user_namespace_is_unsupported() -> None:
    config = container_config(
        namespace_options=pb.NamespaceOption(
            pid=pb.CONTAINER, userns_options=pb.UserNamespace(mode=pb.CONTAINER)
        )
    )
    with pytest.raises(SpecUnsupportedError, match="user namespace mode CONTAINER"):
        with_namespaces(empty_spec(), make_inputs(config))
