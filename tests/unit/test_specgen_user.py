"""process.user: run_as_user / run_as_username / run_as_group / image User, groups, policies."""

from __future__ import annotations

from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import ContainerUser, SpecInvalidError, UserDatabase, UserNotFoundError
from cri.specgen.user import (
    image_status_user,
    parse_group,
    parse_passwd,
    resolve_user,
    with_user,
)
from tests.unit.test_specgen_support import container_config, empty_spec, make_inputs


def user_of(
    image_user: str = "", users: UserDatabase | None = None, **security: Any
) -> ContainerUser:
    config = container_config(**security)
    image = {"Cmd": ["sh"], "User": image_user}
    overrides: dict[str, Any] = {"image_config": image}
    if users is not None:
        overrides["user_db"] = users
    return resolve_user(make_inputs(config, **overrides))


def test_parse_passwd_skips_comments_and_malformed_lines() -> None:
    text = (
        "# comment\nroot:x:0:0:root:/root:/bin/sh\n\nbad\n"
        "odd:x:a:1::/:/bin/sh\napp:x:1000:100:App:/home/app:/bin/sh\n"
    )
    entries = parse_passwd(text)
    assert [(e.name, e.uid, e.gid, e.home) for e in entries] == [
        ("root", 0, 0, "/root"),
        ("app", 1000, 100, "/home/app"),
    ]


def test_parse_group_members() -> None:
    entries = parse_group("wheel:x:10:root,app\nempty:x:11:\nshort:x:12\nbad:x:zz:a\n")
    assert [(g.name, g.gid, g.members) for g in entries] == [
        ("wheel", 10, ("root", "app")),
        ("empty", 11, ()),
        ("short", 12, ()),
    ]


def test_default_user_is_root_with_its_image_groups() -> None:
    assert user_of() == ContainerUser(0, 0, (0, 10))


@pytest.mark.parametrize(
    ("image_user", "expected"),
    [
        ("1000", ContainerUser(1000, 1000, (1000, 50000))),
        ("app", ContainerUser(1000, 1000, (1000, 50000))),
        ("app:wheel", ContainerUser(1000, 10, (10, 50000))),
        ("1000:4242", ContainerUser(1000, 4242, (4242, 50000))),
        ("app:4242", ContainerUser(1000, 4242, (4242, 50000))),
        ("1234:wheel", ContainerUser(1234, 10, (10,))),
        # A uid the image does not know runs with gid 0 and no image groups (containerd).
        ("4321", ContainerUser(4321, 0, (0,))),
    ],
)
def test_image_user_forms(image_user: str, expected: ContainerUser) -> None:
    assert user_of(image_user) == expected


def test_run_as_user_overrides_image_user() -> None:
    assert user_of("app", run_as_user=pb.Int64Value(value=1)) == ContainerUser(1, 1, (1, 50000))


def test_run_as_user_zero_is_explicit_root() -> None:
    assert user_of("app", run_as_user=pb.Int64Value(value=0)) == ContainerUser(0, 0, (0, 10))


def test_run_as_username_resolves_in_the_image() -> None:
    assert user_of(run_as_username="daemon") == ContainerUser(1, 1, (1, 50000))


def test_missing_run_as_username_names_it() -> None:
    with pytest.raises(
        UserNotFoundError, match="user 'ghost' not found in the image's /etc/passwd"
    ):
        user_of(run_as_username="ghost")


def test_missing_image_user_name_names_it() -> None:
    with pytest.raises(UserNotFoundError, match="image config User: user 'ghost' not found"):
        user_of("ghost")


def test_missing_image_group_name_names_it() -> None:
    with pytest.raises(
        UserNotFoundError, match="group 'ghosts' not found in the image's /etc/group"
    ):
        user_of("app:ghosts")


def test_run_as_group_replaces_primary_gid() -> None:
    user = user_of(run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=3000))
    assert user == ContainerUser(1000, 3000, (3000, 50000))


def test_run_as_group_without_user_is_refused() -> None:
    with pytest.raises(SpecInvalidError, match="run_as_group 3000 is set without run_as_user"):
        user_of("app", run_as_group=pb.Int64Value(value=3000))


def test_run_as_user_and_username_together_are_refused() -> None:
    with pytest.raises(SpecInvalidError, match="only one may be"):
        user_of(run_as_user=pb.Int64Value(value=1), run_as_username="daemon")


def test_supplemental_groups_merge_policy() -> None:
    # critest "SupplementalGroupsPolicy=Merge": uid 1000 in image group 50000 plus 1234.
    user = user_of(run_as_user=pb.Int64Value(value=1000), supplemental_groups=[1234])
    assert user == ContainerUser(1000, 1000, (1000, 1234, 50000))


def test_supplemental_groups_strict_policy_ignores_image_groups() -> None:
    user = user_of(
        run_as_user=pb.Int64Value(value=1000),
        supplemental_groups=[1234],
        supplemental_groups_policy=pb.SupplementalGroupsPolicy.Strict,
    )
    assert user == ContainerUser(1000, 1000, (1000, 1234))


def test_supplemental_groups_are_deduplicated_and_sorted() -> None:
    user = user_of("app", supplemental_groups=[50000, 7, 1000, 7])
    assert user.supplemental_groups == (7, 1000, 50000)


def test_unknown_supplemental_groups_policy_is_refused() -> None:
    with pytest.raises(SpecInvalidError, match="supplemental_groups_policy 7"):
        user_of(supplemental_groups_policy=7)


@pytest.mark.parametrize(
    ("security", "fragment"),
    [
        ({"run_as_user": pb.Int64Value(value=-1)}, "run_as_user -1 is out of range"),
        ({"run_as_user": pb.Int64Value(value=2**31)}, "out of range"),
        (
            {"run_as_user": pb.Int64Value(value=1), "run_as_group": pb.Int64Value(value=-5)},
            "run_as_group -5 is out of range",
        ),
        ({"supplemental_groups": [-1]}, "supplemental group -1 is out of range"),
        ({"run_as_username": "a:b"}, "is not a user name"),
    ],
)
def test_out_of_range_ids_are_refused(security: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecInvalidError, match=fragment):
        user_of(**security)


@pytest.mark.parametrize("image_user", ["app:", ":wheel", "a:b:c", "99999999999", "-3"])
def test_malformed_image_user_is_refused(image_user: str) -> None:
    with pytest.raises(SpecInvalidError, match=r"image config User|out of range"):
        user_of(image_user)


def test_numeric_user_works_without_passwd() -> None:
    assert user_of("1000", users=UserDatabase()) == ContainerUser(1000, 0, (0,))
    assert user_of(users=UserDatabase()) == ContainerUser(0, 0, (0,))


def test_with_user_writes_process_user_with_primary_gid_in_additional_gids() -> None:
    spec = with_user(empty_spec(), make_inputs(image_config={"Cmd": ["sh"], "User": "app"}))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50000]}


def test_container_user_to_proto() -> None:
    proto = ContainerUser(1000, 1000, (1000, 1234)).to_proto()
    assert proto.linux.uid == 1000
    assert list(proto.linux.supplemental_groups) == [1000, 1234]


@pytest.mark.parametrize(
    ("image_user", "expected"),
    [
        ("", (None, "")),
        ("1000", (1000, "")),
        ("0:0", (0, "")),
        ("app", (None, "app")),
        ("app:wheel", (None, "app")),
    ],
)
def test_image_status_user_for_kubelet_run_as_non_root(
    image_user: str, expected: tuple[int | None, str]
) -> None:
    assert image_status_user(image_user) == expected
