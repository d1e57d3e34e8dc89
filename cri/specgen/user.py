"""process.user: uid, gid and supplemental groups from the security context and the image.

Which user string is used, first match wins:

    run_as_username          a name, resolved in the image's /etc/passwd (must exist)
    run_as_user              a uid (looked up in /etc/passwd for its primary gid and name)
    image config User        "uid", "name", "uid:gid", "name:group", "uid:group", "name:gid"
    (none)                   uid 0

then run_as_group replaces the primary gid (only allowed with run_as_user/run_as_username),
and the supplemental groups are

    SupplementalGroupsPolicy Merge  (default)  primary gid + the image's /etc/group groups
                                               listing the user + supplemental_groups
    SupplementalGroupsPolicy Strict            primary gid + supplemental_groups

as a sorted set, so that ContainerStatus.user matches what `id -G` prints in the container.
A uid that /etc/passwd does not know runs with gid 0 and no image groups (containerd, runc).
"""

from __future__ import annotations

import dataclasses

from cri.api import api_pb2 as pb
from cri.specgen.errors import SpecInvalidError, UserNotFoundError
from cri.specgen.inputs import (
    ContainerUser,
    GroupEntry,
    PasswdEntry,
    Spec,
    SpecInputs,
    UserDatabase,
)
from cri.specgen.process import image_string

# runc keeps ids at or below MaxInt32; so do containerd and crib.
MAX_ID = 2**31 - 1


def parse_passwd(text: str) -> tuple[PasswdEntry, ...]:
    """Entries of an /etc/passwd file; malformed lines are skipped as the C library does."""
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 4:
            continue
        try:
            uid, gid = int(fields[2]), int(fields[3])
        except ValueError:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(PasswdEntry(name=fields[0], uid=uid, gid=gid, home=home))
    return tuple(entries)


def parse_group(text: str) -> tuple[GroupEntry, ...]:
    """Entries of an /etc/group file; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        members = tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m)
        entries.append(GroupEntry(name=fields[0], gid=gid, members=members))
    return tuple(entries)


def _parse_id(text: str, what: str, user_string: str) -> int | None:
    """An id if `text` is numeric (None if it is a name), range-checked like runc."""
    if not text.isdigit():
        if text.lstrip("-").isdigit():
            raise SpecInvalidError(f"user {user_string!r}: {what} {text} is out of range")
        return None
    value = int(text)
    if value > MAX_ID:
        raise SpecInvalidError(f"user {user_string!r}: {what} {value} is out of range")
    return value


@dataclasses.dataclass(frozen=True)
class _Resolved:
    uid: int
    gid: int
    # The passwd name of the user, for its /etc/group memberships ("" = unknown uid).
    username: str


def resolve_user_string(user_string: str, db: UserDatabase, source: str) -> _Resolved:
    """uid, primary gid and passwd name for an image-style user string.

    `source` names where the string came from, for error messages.
    """
    entry: PasswdEntry | None
    if user_string == "":
        entry = db.user_by_uid(0)
        return _Resolved(0, entry.gid if entry else 0, entry.name if entry else "")
    user_part, sep, group_part = user_string.partition(":")
    if sep and (not user_part or not group_part or ":" in group_part):
        raise SpecInvalidError(f"{source} {user_string!r} is not user, user:group or uid:gid")
    uid = _parse_id(user_part, "uid", user_string)
    if uid is None:
        by_name = db.user_by_name(user_part)
        if by_name is None:
            raise UserNotFoundError(
                f"{source}: user {user_part!r} not found in the image's /etc/passwd"
            )
        entry = by_name
        uid = by_name.uid
    else:
        entry = db.user_by_uid(uid)
    gid = entry.gid if entry else 0
    if sep:
        group_id = _parse_id(group_part, "gid", user_string)
        if group_id is None:
            group = db.group_by_name(group_part)
            if group is None:
                raise UserNotFoundError(
                    f"{source}: group {group_part!r} not found in the image's /etc/group"
                )
            group_id = group.gid
        gid = group_id
    return _Resolved(uid, gid, entry.name if entry else "")


def resolve_user(inputs: SpecInputs) -> ContainerUser:
    """The identity of the container's first process (see the module docstring)."""
    sc = inputs.security_context
    has_uid = sc.HasField("run_as_user")
    has_group = sc.HasField("run_as_group")
    if sc.run_as_username and has_uid:
        raise SpecInvalidError(
            f"run_as_user {sc.run_as_user.value} and run_as_username {sc.run_as_username!r} "
            "are both set; only one may be"
        )
    if has_group and not (has_uid or sc.run_as_username):
        raise SpecInvalidError(
            f"run_as_group {sc.run_as_group.value} is set without run_as_user or run_as_username"
        )
    db = inputs.user_db
    if sc.run_as_username:
        if ":" in sc.run_as_username:
            raise SpecInvalidError(f"run_as_username {sc.run_as_username!r} is not a user name")
        named = db.user_by_name(sc.run_as_username)
        if named is None:
            raise UserNotFoundError(
                f"run_as_username: user {sc.run_as_username!r} not found in the image's /etc/passwd"
            )
        resolved = _Resolved(named.uid, named.gid, named.name)
    elif has_uid:
        uid = sc.run_as_user.value
        if not 0 <= uid <= MAX_ID:
            raise SpecInvalidError(f"run_as_user {uid} is out of range")
        entry_by_uid = db.user_by_uid(uid)
        resolved = _Resolved(
            uid, entry_by_uid.gid if entry_by_uid else 0, entry_by_uid.name if entry_by_uid else ""
        )
    else:
        resolved = resolve_user_string(
            image_string(inputs.image_config, "User"), db, "image config User"
        )
    gid = resolved.gid
    if has_group:
        gid = sc.run_as_group.value
        if not 0 <= gid <= MAX_ID:
            raise SpecInvalidError(f"run_as_group {gid} is out of range")
    groups = {gid}
    policy = sc.supplemental_groups_policy
    if policy == pb.SupplementalGroupsPolicy.Merge:
        if resolved.username:
            groups.update(db.groups_of(resolved.username))
    elif policy != pb.SupplementalGroupsPolicy.Strict:
        raise SpecInvalidError(f"supplemental_groups_policy {policy} is not Merge or Strict")
    for extra in sc.supplemental_groups:
        if not 0 <= extra <= MAX_ID:
            raise SpecInvalidError(f"supplemental group {extra} is out of range")
        groups.add(extra)
    return ContainerUser(uid=resolved.uid, gid=gid, supplemental_groups=tuple(sorted(groups)))


def with_user(spec: Spec, inputs: SpecInputs) -> Spec:
    """process.user from the resolved identity (additionalGids include the primary gid)."""
    user = resolve_user(inputs)
    spec["process"]["user"] = {
        "uid": user.uid,
        "gid": user.gid,
        "additionalGids": list(user.supplemental_groups),
    }
    return spec


def container_user_of(spec: Spec) -> ContainerUser:
    """The identity a generated spec runs its process as."""
    user = spec["process"]["user"]
    return ContainerUser(
        uid=user["uid"], gid=user["gid"], supplemental_groups=tuple(user.get("additionalGids", ()))
    )


def image_status_user(user_string: str) -> tuple[int | None, str]:
    """(uid, username) of an image's User for ImageStatus (Image.uid / Image.username).

    kubelet enforces runAsNonRoot itself from these two fields: a numeric user gives a
    uid it can check, a name gives a username and kubelet refuses the pod ("image has
    non-numeric user, cannot verify user is non-root"). CRI carries no run_as_non_root.
    """
    user_part = user_string.partition(":")[0]
    if not user_part:
        return None, ""
    if user_part.isdigit():
        return int(user_part), ""
    return None, user_part
