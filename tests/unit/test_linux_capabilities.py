"""Capability names to masks (the five sets)."""

from __future__ import annotations

from sandbox.linux import capabilities


def test_masks_of_each_set() -> None:
    sets, unknown = capabilities.plan(
        {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["cap_chown"],
            "ambient": [],
        },
        highest=40,
    )
    assert unknown == []
    assert sets["bounding"] == (1 << 0) | (1 << 5) | (1 << 21)
    assert sets["effective"] == 1 << 5
    assert sets["permitted"] == (1 << 5) | 1
    assert sets["inheritable"] == 1
    assert sets["ambient"] == 0


def test_unknown_and_newer_than_kernel_are_reported_not_fatal() -> None:
    sets, unknown = capabilities.plan(
        {"bounding": ["CAP_BOGUS", "CAP_CHECKPOINT_RESTORE", "CAP_KILL"]}, highest=37
    )
    assert unknown == ["CAP_BOGUS", "CAP_CHECKPOINT_RESTORE"]
    assert sets["bounding"] == 1 << 5


def test_names_round_trip() -> None:
    mask = capabilities.to_mask(["CAP_NET_RAW", "CAP_AUDIT_WRITE"], 40, [])
    assert capabilities.names(mask) == ["CAP_NET_RAW", "CAP_AUDIT_WRITE"]
    assert len(capabilities.CAPABILITY_NAMES) == 41
    assert capabilities.CAPABILITY_NUMBERS["CAP_BPF"] == 39


def test_last_cap_reads_proc(tmp_path: object) -> None:
    import pathlib

    proc = pathlib.Path(str(tmp_path))
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "cap_last_cap").write_text("38\n")
    assert capabilities.last_cap(str(proc)) == 38
