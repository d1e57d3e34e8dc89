"""Whole specs from `generate`, compared with golden JSON files in tests/data/specgen/.

To accept an intended change, regenerate the files and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_specgen_golden.py
    git diff tests/data/specgen/

Every generated spec must also pass the structural check of the OCI runtime-spec schema.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import GeneratedSpec, PodFiles, SpecInputs, SpecInvalidError, generate
from cri.specgen.generate import STEPS
from tests.unit.test_specgen_support import (
    NAMESPACE_PINS,
    check_oci_spec,
    container_config,
    make_inputs,
    sandbox_config,
)

GOLDEN_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "specgen"

# kubelet's ProcMount "Default" lists (pkg/securitycontext DefaultProcMountMaskedPaths).
KUBELET_MASKED = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
KUBELET_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
TERMINATION_LOG = pb.Mount(
    container_path="/dev/termination-log",
    host_path="/var/lib/kubelet/pods/pod-uid-1/containers/app/5f3a",
)


def busybox() -> SpecInputs:
    """A plain kubelet container: besteffort, an env var, the termination log, Unconfined."""
    config = container_config(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined),
        masked_paths=KUBELET_MASKED,
        readonly_paths=KUBELET_READONLY,
    )
    config.args.extend(["sleep", "3600"])
    config.envs.append(pb.KeyValue(key="GREETING", value=b"hello"))
    config.mounts.append(TERMINATION_LOG)
    config.labels["io.kubernetes.container.name"] = "app"
    config.annotations["io.kubernetes.container.hash"] = "1a2b3c"
    config.linux.resources.CopyFrom(pb.LinuxContainerResources(cpu_shares=2, oom_score_adj=1000))
    return make_inputs(config)


def privileged() -> SpecInputs:
    """A privileged container with a device: all caps, all devices, rw sysfs, no seccomp."""
    config = container_config(
        privileged=True,
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        masked_paths=KUBELET_MASKED,
        readonly_paths=KUBELET_READONLY,
    )
    config.command.extend(["/bin/sh", "-c", "ip link"])
    config.devices.append(
        pb.Device(host_path="/dev/fuse", container_path="/dev/fuse", permissions="rwm")
    )
    return make_inputs(config, sandbox_config(privileged=True))


def restricted() -> SpecInputs:
    """Pod Security "restricted": drop ALL, read-only root, non-root, RuntimeDefault seccomp."""
    config = container_config(
        capabilities=pb.Capability(
            drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]
        ),
        readonly_rootfs=True,
        run_as_user=pb.Int64Value(value=1000),
        run_as_group=pb.Int64Value(value=3000),
        supplemental_groups=[4000],
        no_new_privs=True,
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        masked_paths=KUBELET_MASKED,
        readonly_paths=KUBELET_READONLY,
    )
    config.command.extend(["/app/server"])
    config.working_dir = "/app"
    config.mounts.append(TERMINATION_LOG)
    config.mounts.append(
        pb.Mount(
            container_path="/tmp",
            host_path="/var/lib/kubelet/pods/pod-uid-1/volumes/kubernetes.io~empty-dir/tmp",
        )
    )
    config.mounts.append(
        pb.Mount(
            container_path="/etc/config",
            host_path="/var/lib/kubelet/pods/pod-uid-1/volumes/kubernetes.io~configmap/config",
            readonly=True,
            recursive_read_only=True,
        )
    )
    config.linux.resources.CopyFrom(
        pb.LinuxContainerResources(
            cpu_period=100000,
            cpu_quota=50000,
            cpu_shares=512,
            memory_limit_in_bytes=128 << 20,
            oom_score_adj=-997,
        )
    )
    config.stop_signal = pb.SIGQUIT
    image = {"Cmd": ["/app/server"], "User": "65534", "Volumes": {"/var/cache/app": {}}}
    return make_inputs(config, image_config=image)


def host_network_pid() -> SpecInputs:
    """hostNetwork + hostPID: no network, uts or pid entry; HOSTNAME is the node's."""
    sandbox = sandbox_config(network=pb.NODE, pid=pb.NODE, ipc=pb.POD, hostname="")
    config = container_config(
        namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.NODE, ipc=pb.POD)
    )
    config.command.extend(["/bin/top", "-b"])
    config.tty = True
    config.stdin = True
    return make_inputs(
        config,
        sandbox,
        namespace_paths={"ipc": NAMESPACE_PINS["ipc"]},
        pod_files=PodFiles(
            hostname_path="/var/lib/crib/sandboxes/sandbox-1/hostname",
            hosts_path="/etc/hosts",
            resolv_conf_path="/etc/resolv.conf",
            shm_path="/run/crib/sandboxes/sandbox-1/shm",
        ),
    )


def image_volume() -> SpecInputs:
    """An OCI image volume (KEP 4639) with a sub path, next to a slave host mount."""
    config = container_config()
    config.mounts.append(
        pb.Mount(
            container_path="/models",
            image=pb.ImageSpec(image="sha256:4c1e1a"),
            image_sub_path="v2",
            readonly=True,
        )
    )
    config.mounts.append(
        pb.Mount(
            container_path="/var/lib/plugins",
            host_path="/shared/plugins",
            propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
        )
    )
    return make_inputs(config, image_volumes={"/models": "/var/lib/crib/image-volumes/4c1e1a/v2"})


CASES: dict[str, Callable[[], SpecInputs]] = {
    "busybox": busybox,
    "privileged": privileged,
    "restricted": restricted,
    "host_network_pid": host_network_pid,
    "image_volume": image_volume,
}


def as_json(generated: GeneratedSpec) -> dict[str, Any]:
    data = dataclasses.asdict(generated)
    data["dirs_to_create"] = [dataclasses.asdict(d) for d in generated.dirs_to_create]
    return data


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_spec(name: str) -> None:
    generated = as_json(generate(CASES[name]()))
    check_oci_spec(generated["spec"])
    path = GOLDEN_DIR / f"{name}.json"
    text = json.dumps(generated, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == json.loads(text), (
        f"spec for {name} differs from {path.name}; if intended, regenerate with UPDATE_GOLDEN=1"
    )


def test_golden_specs_say_what_they_promise() -> None:
    # Guards the golden files themselves against an accepted-by-accident regeneration.
    restricted_spec = generate(restricted())
    spec = restricted_spec.spec
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_NET_BIND_SERVICE"]
    assert spec["root"]["readonly"] is True
    assert spec["process"]["user"] == {
        "uid": 1000,
        "gid": 3000,
        "additionalGids": [3000, 4000, 50000],
    }
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert restricted_spec.seccomp_profile == "runtime/default"
    assert [d.path for d in restricted_spec.dirs_to_create] == ["/app", "/var/cache/app"]

    privileged_spec = generate(privileged()).spec
    assert "seccomp" not in privileged_spec["linux"]
    assert privileged_spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]

    host_spec = generate(host_network_pid()).spec
    assert [ns["type"] for ns in host_spec["linux"]["namespaces"]] == ["ipc", "mount"]
    assert "HOSTNAME=node-1" in host_spec["process"]["env"]


def test_generate_does_not_change_its_inputs_and_is_repeatable() -> None:
    inputs = restricted()
    before = inputs.config.SerializeToString(deterministic=True)
    image_before = copy.deepcopy(dict(inputs.image_config))
    first = generate(inputs)
    first.spec["linux"]["seccomp"]["syscalls"].clear()
    second = generate(inputs)
    assert second.spec["linux"]["seccomp"]["syscalls"]
    assert inputs.config.SerializeToString(deterministic=True) == before
    assert dict(inputs.image_config) == image_before


def test_generate_returns_the_pieces_createcontainer_keeps() -> None:
    generated = generate(busybox())
    assert generated.log_path == "/var/log/pods/default_web-0_pod-uid-1/app/0.log"
    assert generated.user.to_proto().linux.supplemental_groups == [0, 10]
    assert generated.stop_signal == 15
    assert generated.working_dir == "/"
    assert generated.dirs_to_create == ()


def test_generate_surfaces_step_errors() -> None:
    inputs = make_inputs(container_config(privileged=True))
    with pytest.raises(SpecInvalidError, match="is privileged but sandbox"):
        generate(inputs)


def test_seccomp_is_compiled_after_capabilities() -> None:
    names = [step.__name__ for step in STEPS]
    assert names.index("with_capabilities") < names.index("with_seccomp")
    assert names.index("with_default_mounts") < names.index("with_mounts")
    assert len(set(names)) == len(names)
