"""linux.devices and the device cgroup rules."""

from __future__ import annotations

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SpecInvalidError, SpecUnsupportedError
from cri.specgen.devices import with_devices
from tests.unit.test_specgen_support import (
    container_config,
    empty_spec,
    make_inputs,
    sandbox_config,
)


def devices_for(
    *devices: pb.Device, privileged: bool = False
) -> dict[str, list[dict[str, object]]]:
    config = container_config(privileged=privileged)
    config.devices.extend(devices)
    inputs = make_inputs(config, sandbox_config(privileged=privileged))
    linux = with_devices(empty_spec(), inputs)["linux"]
    return {"devices": linux["devices"], "rules": linux["resources"]["devices"]}


def test_no_devices_denies_everything() -> None:
    assert devices_for() == {"devices": [], "rules": [{"allow": False, "access": "rwm"}]}


def test_one_device_node_with_permissions() -> None:
    found = devices_for(
        pb.Device(host_path="/dev/fuse", container_path="/dev/fuse", permissions="mrw")
    )
    assert found["devices"] == [
        {
            "path": "/dev/fuse",
            "type": "c",
            "major": 10,
            "minor": 229,
            "fileMode": 0o666,
            "uid": 0,
            "gid": 0,
        }
    ]
    assert found["rules"][1] == {
        "allow": True,
        "type": "c",
        "major": 10,
        "minor": 229,
        "access": "rwm",
    }


def test_device_renamed_in_the_container() -> None:
    found = devices_for(
        pb.Device(host_path="/dev/sda", container_path="/dev/xvda", permissions="r")
    )
    assert found["devices"][0]["path"] == "/dev/xvda"
    assert found["devices"][0]["type"] == "b"
    assert found["rules"][1]["access"] == "r"


def test_empty_container_path_keeps_the_host_path_and_empty_permissions_mean_rwm() -> None:
    found = devices_for(pb.Device(host_path="/dev/fuse"))
    assert found["devices"][0]["path"] == "/dev/fuse"
    assert found["rules"][1]["access"] == "rwm"


def test_directory_gives_every_device_below_it() -> None:
    found = devices_for(
        pb.Device(host_path="/dev/snd", container_path="/dev/sound", permissions="rw")
    )
    assert [d["path"] for d in found["devices"]] == ["/dev/sound/controlC0", "/dev/sound/timer"]
    assert [r.get("minor") for r in found["rules"][1:]] == [2, 33]


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        (pb.Device(host_path="/dev/fuse", permissions="rwx"), "permissions 'rwx'"),
        (pb.Device(host_path="/dev/fuse", permissions="rr"), "permissions 'rr'"),
        (pb.Device(host_path="dev/fuse"), "is not an absolute path"),
        (pb.Device(host_path="/dev/nothing"), "holds no device node"),
        (pb.Device(host_path="/dev/fuse", container_path="/dev/../etc/x"), "contains '..'"),
    ],
)
def test_bad_devices_are_refused(device: pb.Device, fragment: str) -> None:
    with pytest.raises(SpecInvalidError, match=fragment):
        devices_for(device)


def test_privileged_gets_every_host_device_and_allow_all() -> None:
    found = devices_for(
        pb.Device(host_path="/dev/fuse", container_path="/dev/fuse"), privileged=True
    )
    paths = [d["path"] for d in found["devices"]]
    assert paths == ["/dev/fuse", "/dev/null", "/dev/sda", "/dev/snd/controlC0", "/dev/snd/timer"]
    assert found["rules"] == [{"allow": True, "access": "rwm"}]


def test_a_single_node_below_a_directory_keeps_its_name() -> None:
    from tests.unit.test_specgen_support import FAKE_DEVICE_DIRS, HostDevice

    FAKE_DEVICE_DIRS["/dev/one"] = [HostDevice("/dev/one/only", "c", 5, 5, 0o600, 0, 0)]
    try:
        found = devices_for(pb.Device(host_path="/dev/one", container_path="/dev/single"))
    finally:
        del FAKE_DEVICE_DIRS["/dev/one"]
    assert [d["path"] for d in found["devices"]] == ["/dev/single/only"]


def test_cdi_devices_are_refused_not_dropped() -> None:
    config = container_config()
    config.CDI_devices.append(pb.CDIDevice(name="vendor.com/gpu=0"))
    with pytest.raises(SpecUnsupportedError, match=r"CDI devices \(vendor.com/gpu=0\)"):
        with_devices(empty_spec(), make_inputs(config))
