"""Capabilities, privileged, no_new_privs, read-only rootfs, masked paths, AppArmor."""

from __future__ import annotations

from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SpecInvalidError, SpecUnsupportedError
from cri.specgen.security import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    with_apparmor,
    with_capabilities,
    with_masked_paths,
    with_no_new_privs,
    with_privileged,
    with_readonly_rootfs,
)
from tests.unit.test_specgen_support import (
    container_config,
    empty_spec,
    fake_host,
    make_inputs,
    sandbox_config,
)


def caps_for(
    add: list[str] | None = None,
    drop: list[str] | None = None,
    ambient: list[str] | None = None,
    *,
    privileged: bool = False,
    **overrides: Any,
) -> dict[str, list[str]]:
    capability = pb.Capability(
        add_capabilities=add or [],
        drop_capabilities=drop or [],
        add_ambient_capabilities=ambient or [],
    )
    config = container_config(capabilities=capability, privileged=privileged)
    inputs = make_inputs(config, sandbox_config(privileged=privileged), **overrides)
    caps: dict[str, list[str]] = with_capabilities(empty_spec(), inputs)["process"]["capabilities"]
    return caps


def in_number_order(names: set[str] | tuple[str, ...]) -> list[str]:
    return [c for c in CAPABILITIES if c in names]


def test_default_capabilities_in_every_set_but_inheritable_and_ambient() -> None:
    caps = caps_for()
    expected = in_number_order(DEFAULT_CAPABILITIES)
    assert caps == {
        "bounding": expected,
        "effective": expected,
        "permitted": expected,
        "inheritable": [],
        "ambient": [],
    }


def test_add_and_drop_with_or_without_prefix_any_case() -> None:
    caps = caps_for(add=["NET_ADMIN", "cap_sys_time"], drop=["CAP_CHOWN", "mknod"])
    assert "CAP_NET_ADMIN" in caps["bounding"]
    assert "CAP_SYS_TIME" in caps["effective"]
    assert "CAP_CHOWN" not in caps["permitted"]
    assert "CAP_MKNOD" not in caps["bounding"]


def test_drop_all_then_add() -> None:
    caps = caps_for(add=["NET_BIND_SERVICE"], drop=["ALL"])
    assert caps["bounding"] == ["CAP_NET_BIND_SERVICE"]


def test_drop_all_only() -> None:
    assert caps_for(drop=["all"])["bounding"] == []


def test_add_all_then_drop() -> None:
    caps = caps_for(add=["ALL"], drop=["SYS_ADMIN"])
    assert caps["bounding"] == [c for c in CAPABILITIES if c != "CAP_SYS_ADMIN"]


def test_add_all_is_limited_to_what_the_host_can_grant() -> None:
    host = fake_host(capabilities=tuple(c for c in CAPABILITIES if c != "CAP_SYS_RESOURCE"))
    assert "CAP_SYS_RESOURCE" not in caps_for(add=["ALL"], host=host)["bounding"]


def test_unknown_added_capability_is_refused_unknown_dropped_is_ignored() -> None:
    with pytest.raises(SpecInvalidError, match="unknown capability 'FLY' in add_capabilities"):
        caps_for(add=["FLY"])
    assert caps_for(drop=["FLY"])["bounding"] == in_number_order(DEFAULT_CAPABILITIES)


def test_ambient_capabilities_go_to_all_five_sets() -> None:
    caps = caps_for(ambient=["NET_BIND_SERVICE"], drop=["ALL"])
    assert caps == {key: ["CAP_NET_BIND_SERVICE"] for key in caps}


def test_privileged_gets_everything_the_host_can_grant() -> None:
    caps = caps_for(privileged=True)
    assert caps["bounding"] == list(CAPABILITIES)
    assert caps["inheritable"] == []
    assert caps["ambient"] == []


def test_privileged_container_needs_a_privileged_sandbox() -> None:
    inputs = make_inputs(container_config(privileged=True), sandbox_config(privileged=False))
    with pytest.raises(SpecInvalidError, match="is privileged but sandbox sandbox-1 is not"):
        with_privileged(empty_spec(), inputs)
    ok = make_inputs(container_config(privileged=True), sandbox_config(privileged=True))
    assert with_privileged(empty_spec(), ok) == empty_spec()


@pytest.mark.parametrize("flag", [True, False])
def test_no_new_privs_and_readonly_rootfs(flag: bool) -> None:
    inputs = make_inputs(container_config(no_new_privs=flag, readonly_rootfs=flag))
    assert with_no_new_privs(empty_spec(), inputs)["process"]["noNewPrivileges"] is flag
    assert with_readonly_rootfs(empty_spec(), inputs)["root"]["readonly"] is flag


def masked_for(**security: Any) -> dict[str, Any]:
    privileged = security.get("privileged", False)
    inputs = make_inputs(container_config(**security), sandbox_config(privileged=privileged))
    linux: dict[str, Any] = with_masked_paths(empty_spec(), inputs)["linux"]
    return linux


def test_masked_paths_from_kubelet_are_completed_with_the_defaults() -> None:
    linux = masked_for(masked_paths=["/proc/kcore", "/proc/extra"], readonly_paths=["/proc/sys"])
    assert linux["maskedPaths"][:2] == ["/proc/kcore", "/proc/extra"]
    assert set(linux["maskedPaths"]) == {*DEFAULT_MASKED_PATHS, "/proc/extra"}
    assert linux["readonlyPaths"] == ["/proc/sys"]


def test_no_masked_paths_means_unmasked() -> None:
    # kubelet's ProcMount "Unmasked" sends empty lists.
    linux = masked_for()
    assert linux["maskedPaths"] == []
    assert linux["readonlyPaths"] == []


def test_privileged_has_no_masked_or_readonly_paths() -> None:
    linux = masked_for(privileged=True, masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"])
    assert "maskedPaths" not in linux
    assert "readonlyPaths" not in linux


def test_relative_masked_path_is_refused() -> None:
    with pytest.raises(SpecInvalidError, match="masked_paths entry 'proc/kcore'"):
        masked_for(masked_paths=["proc/kcore"])


def apparmor_for(*, privileged: bool = False, **security: Any) -> dict[str, Any]:
    host = security.pop("host", fake_host())
    inputs = make_inputs(
        container_config(privileged=privileged, **security),
        sandbox_config(privileged=privileged),
        host=host,
    )
    process: dict[str, Any] = with_apparmor(empty_spec(), inputs)["process"]
    return process


@pytest.mark.parametrize(
    "security",
    [
        {},
        {"apparmor": pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)},
        {"apparmor": pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)},
        {"apparmor_profile": "runtime/default"},
        {"apparmor_profile": "unconfined"},
    ],
)
def test_without_apparmor_default_and_unconfined_are_accepted(security: dict[str, Any]) -> None:
    assert "apparmorProfile" not in apparmor_for(**security)


@pytest.mark.parametrize(
    "security",
    [
        {
            "apparmor": pb.SecurityProfile(
                profile_type=pb.SecurityProfile.Localhost, localhost_ref="k8s-nginx"
            )
        },
        {"apparmor_profile": "localhost/k8s-nginx"},
    ],
)
def test_without_apparmor_a_localhost_profile_is_unsupported(security: dict[str, Any]) -> None:
    with pytest.raises(
        SpecUnsupportedError, match="localhost/k8s-nginx was requested but AppArmor"
    ):
        apparmor_for(**security)


def test_privileged_ignores_apparmor() -> None:
    profile = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="x")
    assert "apparmorProfile" not in apparmor_for(privileged=True, apparmor=profile)


def test_with_apparmor_enabled() -> None:
    host = fake_host(apparmor_enabled=True, apparmor_default_profile="crib-default")
    local = pb.SecurityProfile(
        profile_type=pb.SecurityProfile.Localhost, localhost_ref="localhost/p"
    )
    assert apparmor_for(host=host, apparmor=local)["apparmorProfile"] == "p"
    assert apparmor_for(host=host)["apparmorProfile"] == "crib-default"
    assert (
        apparmor_for(host=host, apparmor_profile="runtime/default")["apparmorProfile"]
        == "crib-default"
    )
    unconfined = pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)
    assert "apparmorProfile" not in apparmor_for(host=host, apparmor=unconfined)


@pytest.mark.parametrize(
    ("security", "fragment"),
    [
        (
            {
                "apparmor": pb.SecurityProfile(
                    profile_type=pb.SecurityProfile.RuntimeDefault, localhost_ref="x"
                )
            },
            "localhost_ref is set but profile_type is not Localhost",
        ),
        (
            {"apparmor": pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost)},
            "needs a localhost_ref",
        ),
        ({"apparmor_profile": "docker-default"}, "apparmor_profile 'docker-default'"),
    ],
)
def test_malformed_apparmor_requests(security: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecInvalidError, match=fragment):
        apparmor_for(**security)
