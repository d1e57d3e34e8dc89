"""mounts: defaults, pod files, kubelet binds, propagation, read-only modes, ordering."""

from __future__ import annotations

from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import (
    PodFiles,
    RootfsDir,
    SpecInputError,
    SpecInvalidError,
    SpecPreconditionError,
    SpecUnsupportedError,
)
from cri.specgen.mounts import (
    cri_mount_to_oci,
    image_volume_dirs,
    path_depth,
    with_default_mounts,
    with_mounts,
)
from tests.unit.test_specgen_support import (
    container_config,
    empty_spec,
    fake_host,
    make_inputs,
    sandbox_config,
)


def mounts_for(*mounts: pb.Mount, **overrides: Any) -> list[dict[str, Any]]:
    config = overrides.pop("config", None) or container_config()
    config.mounts.extend(mounts)
    inputs = make_inputs(config, **overrides)
    spec = with_mounts(with_default_mounts(empty_spec(), inputs), inputs)
    return list(spec["mounts"])


def by_destination(mounts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in mounts}


def test_defaults_then_pod_files() -> None:
    destinations = [m["destination"] for m in mounts_for()]
    assert destinations == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev/shm",
    ]


def test_pod_shm_replaces_the_default_tmpfs() -> None:
    shm = by_destination(mounts_for())["/dev/shm"]
    assert shm == {
        "destination": "/dev/shm",
        "type": "bind",
        "source": "/run/crib/sandboxes/sandbox-1/shm",
        "options": ["rbind", "rprivate", "rw"],
    }


def test_without_pod_files_the_default_shm_stays() -> None:
    mounts = by_destination(mounts_for(pod_files=PodFiles()))
    assert mounts["/dev/shm"]["type"] == "tmpfs"
    assert "/etc/hosts" not in mounts


def test_sysfs_and_cgroup_are_read_only_unless_privileged() -> None:
    mounts = by_destination(mounts_for())
    assert "ro" in mounts["/sys"]["options"]
    assert "ro" in mounts["/sys/fs/cgroup"]["options"]
    privileged = by_destination(
        mounts_for(
            config=container_config(privileged=True), sandbox=sandbox_config(privileged=True)
        )
    )
    assert "rw" in privileged["/sys"]["options"]
    assert "rw" in privileged["/sys/fs/cgroup"]["options"]


def test_host_cgroup2_options_are_kept_without_a_cgroup_namespace() -> None:
    host = fake_host(cgroup_v2=True, cgroup_mount_options=("nsdelegate", "memory_recursiveprot"))
    regular = by_destination(mounts_for(host=host))["/sys/fs/cgroup"]["options"]
    assert "nsdelegate" not in regular  # its own cgroup namespace: a fresh view
    privileged = by_destination(
        mounts_for(
            config=container_config(privileged=True),
            sandbox=sandbox_config(privileged=True),
            host=host,
        )
    )["/sys/fs/cgroup"]["options"]
    assert privileged[-2:] == ["nsdelegate", "memory_recursiveprot"]


def test_pod_files_are_read_only_with_a_read_only_rootfs() -> None:
    mounts = by_destination(mounts_for(config=container_config(readonly_rootfs=True)))
    for path in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
        assert mounts[path]["options"] == ["rbind", "rprivate", "ro"]
    assert mounts["/dev/shm"]["options"][-1] == "rw"


def test_kubelet_etc_hosts_wins_over_the_pod_file() -> None:
    mounts = mounts_for(pb.Mount(container_path="/etc/hosts", host_path="/kubelet/etc-hosts"))
    hosts = [m for m in mounts if m["destination"] == "/etc/hosts"]
    assert hosts == [
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": "/kubelet/etc-hosts",
            "options": ["rbind", "rprivate", "rw"],
        }
    ]


def test_termination_log_style_mount_is_a_plain_bind() -> None:
    mount = pb.Mount(container_path="/dev/termination-log", host_path="/var/lib/kubelet/pods/x/c")
    assert by_destination(mounts_for(mount))["/dev/termination-log"]["options"] == [
        "rbind",
        "rprivate",
        "rw",
    ]


@pytest.mark.parametrize(
    ("propagation", "option", "root"),
    [
        (pb.PROPAGATION_PRIVATE, "rprivate", None),
        (pb.PROPAGATION_HOST_TO_CONTAINER, "rslave", "rslave"),
        (pb.PROPAGATION_BIDIRECTIONAL, "rshared", "rshared"),
    ],
)
def test_propagation(propagation: int, option: str, root: str | None) -> None:
    config = container_config()
    config.mounts.append(
        pb.Mount(container_path="/data", host_path="/shared/data", propagation=propagation)
    )
    inputs = make_inputs(config)
    spec = with_mounts(with_default_mounts(empty_spec(), inputs), inputs)
    assert by_destination(spec["mounts"])["/data"]["options"][1] == option
    assert spec["linux"].get("rootfsPropagation") == root


def test_rshared_root_wins_over_rslave() -> None:
    config = container_config()
    config.mounts.extend(
        [
            pb.Mount(
                container_path="/a",
                host_path="/shared/a",
                propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
            ),
            pb.Mount(
                container_path="/b", host_path="/shared/b", propagation=pb.PROPAGATION_BIDIRECTIONAL
            ),
        ]
    )
    spec = with_mounts(empty_spec(), make_inputs(config))
    assert spec["linux"]["rootfsPropagation"] == "rshared"


def test_bidirectional_needs_a_shared_host_mount() -> None:
    mount = pb.Mount(
        container_path="/data", host_path="/private/data", propagation=pb.PROPAGATION_BIDIRECTIONAL
    )
    with pytest.raises(SpecPreconditionError, match="'/private/data' is on a private mount"):
        mounts_for(mount)


def test_host_to_container_accepts_a_slave_host_mount() -> None:
    host = fake_host(mount_propagation=lambda path: "slave")
    mount = pb.Mount(
        container_path="/data", host_path="/x", propagation=pb.PROPAGATION_HOST_TO_CONTAINER
    )
    assert by_destination(mounts_for(mount, host=host))["/data"]["options"][1] == "rslave"
    with pytest.raises(SpecPreconditionError, match="needs a shared or slave mount"):
        mounts_for(mount, host=fake_host(mount_propagation=lambda path: "private"))


def test_propagation_is_not_checked_without_a_lookup() -> None:
    mount = pb.Mount(
        container_path="/data", host_path="/x", propagation=pb.PROPAGATION_BIDIRECTIONAL
    )
    assert mounts_for(mount, host=fake_host(mount_propagation=None))


def test_readonly_and_recursive_readonly() -> None:
    ro = pb.Mount(container_path="/ro", host_path="/h/ro", readonly=True)
    rro = pb.Mount(
        container_path="/rro", host_path="/h/rro", readonly=True, recursive_read_only=True
    )
    mounts = by_destination(mounts_for(ro, rro))
    assert mounts["/ro"]["options"] == ["rbind", "rprivate", "ro"]
    assert mounts["/rro"]["options"] == ["rbind", "rprivate", "rro"]


def test_recursive_readonly_rules() -> None:
    without_ro = pb.Mount(container_path="/x", host_path="/h", recursive_read_only=True)
    with pytest.raises(SpecInvalidError, match="recursive_read_only needs readonly"):
        mounts_for(without_ro)
    not_private = pb.Mount(
        container_path="/x",
        host_path="/shared/h",
        readonly=True,
        recursive_read_only=True,
        propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
    )
    with pytest.raises(
        SpecInvalidError, match="needs PROPAGATION_PRIVATE, got PROPAGATION_HOST_TO_CONTAINER"
    ):
        mounts_for(not_private)
    ok = pb.Mount(container_path="/x", host_path="/h", readonly=True, recursive_read_only=True)
    with pytest.raises(SpecUnsupportedError, match="recursive read-only mounts are not supported"):
        mounts_for(ok, host=fake_host(recursive_read_only=False))


@pytest.mark.parametrize(
    ("container_path", "fragment"),
    [
        ("", "container_path is empty"),
        ("data", "is not an absolute path"),
        ("/data/../etc", "contains '..'"),
        ("/", "may not replace the container root"),
    ],
)
def test_bad_destinations_are_refused(container_path: str, fragment: str) -> None:
    with pytest.raises(SpecInvalidError, match=fragment):
        mounts_for(pb.Mount(container_path=container_path, host_path="/h"))


def test_bad_host_paths_are_refused() -> None:
    with pytest.raises(SpecInvalidError, match="has an empty host_path"):
        mounts_for(pb.Mount(container_path="/x"))
    with pytest.raises(SpecInvalidError, match="host_path 'rel' is not an absolute path"):
        mounts_for(pb.Mount(container_path="/x", host_path="rel"))


def test_duplicate_destinations_are_refused() -> None:
    with pytest.raises(SpecInvalidError, match="two mounts have the container path '/x'"):
        mounts_for(
            pb.Mount(container_path="/x", host_path="/a"),
            pb.Mount(container_path="/x/", host_path="/b"),
        )


def test_destinations_are_normalised() -> None:
    mounts = by_destination(mounts_for(pb.Mount(container_path="//data/./sub/", host_path="/h")))
    assert "/data/sub" in mounts


def test_parents_mount_before_children() -> None:
    mounts = mounts_for(
        pb.Mount(container_path="/var/lib/app/cache", host_path="/c"),
        pb.Mount(container_path="/etc", host_path="/host-etc"),
        pb.Mount(container_path="/var/lib/app", host_path="/a"),
        pb.Mount(container_path="/var", host_path="/v"),
    )
    supplied = [m["destination"] for m in mounts if m["type"] == "bind"]
    assert supplied == [
        "/etc",
        "/var",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev/shm",
        "/var/lib/app",
        "/var/lib/app/cache",
    ]
    assert [path_depth(p) for p in supplied] == sorted(path_depth(p) for p in supplied)


def test_supplied_dev_replaces_every_default_below_dev() -> None:
    mounts = by_destination(mounts_for(pb.Mount(container_path="/dev", host_path="/dev")))
    assert mounts["/dev"]["type"] == "bind"
    assert "/dev/pts" not in mounts
    assert "/dev/mqueue" not in mounts
    assert mounts["/dev/shm"]["type"] == "bind"  # the pod's shm still goes on top


def test_supplied_sys_replaces_the_cgroup_mount() -> None:
    mounts = by_destination(mounts_for(pb.Mount(container_path="/sys", host_path="/sys")))
    assert "/sys/fs/cgroup" not in mounts


def test_mount_id_mappings_are_passed_on() -> None:
    mount = pb.Mount(
        container_path="/x",
        host_path="/h",
        uidMappings=[pb.IDMapping(host_id=1000, container_id=0, length=1)],
        gidMappings=[pb.IDMapping(host_id=2000, container_id=0, length=1)],
    )
    oci = cri_mount_to_oci(mount, make_inputs())
    assert oci["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert oci["gidMappings"] == [{"containerID": 0, "hostID": 2000, "size": 1}]


def test_selinux_relabel_is_ignored() -> None:
    mount = pb.Mount(container_path="/x", host_path="/h", selinux_relabel=True)
    assert cri_mount_to_oci(mount, make_inputs())["options"] == ["rbind", "rprivate", "rw"]


def test_image_volume_uses_the_resolved_path_read_only() -> None:
    mount = pb.Mount(
        container_path="/models",
        image=pb.ImageSpec(image="sha256:abc"),
        image_sub_path="v1",
        uidMappings=[pb.IDMapping(host_id=1, container_id=0, length=1)],
    )
    inputs = make_inputs(image_volumes={"/models": "/var/lib/crib/image-volumes/abc/v1"})
    assert cri_mount_to_oci(mount, inputs) == {
        "destination": "/models",
        "type": "bind",
        "source": "/var/lib/crib/image-volumes/abc/v1",
        "options": ["rbind", "rprivate", "ro"],
    }


def test_image_volume_errors() -> None:
    both = pb.Mount(container_path="/m", host_path="/h", image=pb.ImageSpec(image="img"))
    with pytest.raises(SpecInvalidError, match="mutually exclusive"):
        cri_mount_to_oci(both, make_inputs(image_volumes={"/m": "/x"}))
    unresolved = pb.Mount(container_path="/m", image=pb.ImageSpec(image="img"))
    with pytest.raises(SpecInputError, match="image volume 'img' for '/m' was not resolved"):
        cri_mount_to_oci(unresolved, make_inputs())


def test_image_config_volumes_become_directories_to_create() -> None:
    config = container_config()
    config.mounts.append(pb.Mount(container_path="/covered", host_path="/h"))
    image = {"Cmd": ["sh"], "Volumes": {"/data": {}, "/covered": {}, "rel": {}, "/a/../../b": {}}}
    dirs = image_volume_dirs(make_inputs(config, image_config=image), 1000, 1000)
    assert dirs == [RootfsDir("/data", 1000, 1000), RootfsDir("/rel", 1000, 1000)]
