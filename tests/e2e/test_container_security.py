"""What a container's process is allowed to be and do, seen from inside: users and groups
(both supplemental-group policies), the working directory, read-only root, capabilities,
seccomp RuntimeDefault, and pid namespace modes."""

from __future__ import annotations

import pytest

from cri.api import api_pb2 as pb
from tests.e2e import containers
from tests.e2e.containers import CtrCrib

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.usefixtures("no_ctr_leaks")]

registry = containers.registry
crib = containers.crib
no_ctr_leaks = containers.no_ctr_leaks

RUNNING = pb.ContainerState.CONTAINER_RUNNING
SLEEP = ["sleep", "1000"]
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21


def security(**fields: object) -> pb.LinuxContainerConfig:
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**fields))


def running(
    crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig], name: str, **fields: object
) -> str:
    sandbox_id, pod = sandbox
    command = fields.pop("command", SLEEP)
    container_id = crib.run(sandbox_id, pod, crib.config(name, command, **fields))  # type: ignore[arg-type]
    crib.wait_state(container_id, RUNNING)
    return container_id


def cap_eff(crib: CtrCrib, container_id: str) -> int:
    status = crib.output(container_id, "cat", "/proc/self/status")
    line = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return int(line.split()[1], 16)


@pytest.fixture(scope="module")
def sandbox(crib: CtrCrib) -> tuple[str, pb.PodSandboxConfig]:
    return crib.run_pod()


def test_image_user_and_working_dir(
    crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig]
) -> None:
    container_id = running(crib, sandbox, "img-user", image="app-user")
    # image User "app" (1000:1000), member of "extra" (2000) in the image's /etc/group
    assert crib.output(container_id, "id", "-u").strip() == "1000"
    assert crib.output(container_id, "id", "-G").split() == ["1000", "2000"]
    # the image's WorkingDir did not exist in the image: created, owned by nobody special
    assert crib.output(container_id, "pwd").strip() == "/home/app/work"
    user = crib.status(container_id).status.user.linux
    assert (user.uid, user.gid, list(user.supplemental_groups)) == (1000, 1000, [1000, 2000])


@pytest.mark.parametrize(
    ("policy", "groups"),
    [
        (pb.SupplementalGroupsPolicy.Merge, ["1000", "2000", "3000"]),
        (pb.SupplementalGroupsPolicy.Strict, ["1000", "3000"]),
    ],
)
def test_run_as_user_and_supplemental_group_policies(
    crib: CtrCrib,
    sandbox: tuple[str, pb.PodSandboxConfig],
    policy: int,
    groups: list[str],
) -> None:
    container_id = running(
        crib,
        sandbox,
        f"policy-{policy}",
        linux=security(
            run_as_user=pb.Int64Value(value=1000),
            supplemental_groups=[3000],
            supplemental_groups_policy=policy,
        ),
    )
    assert crib.output(container_id, "id", "-u").strip() == "1000"
    assert crib.output(container_id, "id", "-g").strip() == "1000"
    assert crib.output(container_id, "id", "-G").split() == groups
    user = crib.status(container_id).status.user.linux
    assert [str(g) for g in user.supplemental_groups] == groups


def test_run_as_username_and_group(crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig]) -> None:
    container_id = running(
        crib,
        sandbox,
        "by-name",
        linux=security(run_as_username="app", run_as_group=pb.Int64Value(value=5000)),
    )
    assert crib.output(container_id, "id", "-u").strip() == "1000"
    assert crib.output(container_id, "id", "-g").strip() == "5000"
    user = crib.status(container_id).status.user.linux
    assert (user.uid, user.gid) == (1000, 5000)


def test_readonly_rootfs(crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig]) -> None:
    container_id = running(crib, sandbox, "ro", linux=security(readonly_rootfs=True))
    for path in ("/x", "/tmp/x", "/etc/hosts"):
        result = crib.exec_sync(container_id, ["touch", path])
        assert result.exit_code != 0, path
        assert b"Read-only file system" in result.stderr
    # the pod's /dev/shm stays writable
    assert crib.exec_sync(container_id, ["touch", "/dev/shm/x"]).exit_code == 0
    writable = running(crib, sandbox, "rw")
    assert crib.exec_sync(writable, ["touch", "/x"]).exit_code == 0


def test_capabilities(crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig]) -> None:
    default = running(crib, sandbox, "caps-default")
    assert cap_eff(crib, default) >> CAP_NET_RAW & 1
    assert not cap_eff(crib, default) >> CAP_SYS_ADMIN & 1
    dropped = running(
        crib,
        sandbox,
        "caps-drop",
        linux=security(capabilities=pb.Capability(drop_capabilities=["NET_RAW"])),
    )
    assert not cap_eff(crib, dropped) >> CAP_NET_RAW & 1
    none = running(
        crib,
        sandbox,
        "caps-none",
        linux=security(capabilities=pb.Capability(drop_capabilities=["ALL"])),
    )
    assert cap_eff(crib, none) == 0
    # without CAP_CHOWN even root cannot give a file away
    assert crib.exec_sync(none, ["chown", "1000", "/tmp"]).exit_code != 0
    added = running(
        crib,
        sandbox,
        "caps-add",
        linux=security(capabilities=pb.Capability(add_capabilities=["SYS_ADMIN"])),
    )
    assert cap_eff(crib, added) >> CAP_SYS_ADMIN & 1


def test_seccomp_runtime_default_blocks_new_user_namespaces(
    crib: CtrCrib, sandbox: tuple[str, pb.PodSandboxConfig]
) -> None:
    # unshare(CLONE_NEWUSER) needs no capability, so only the filter refuses it: the
    # published default profile allows it only with CAP_SYS_ADMIN.
    unconfined = running(
        crib,
        sandbox,
        "unconfined",
        linux=security(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)),
    )
    result = crib.exec_sync(unconfined, ["unshare", "-U", "true"])
    assert result.exit_code == 0, result.stderr
    default = running(
        crib,
        sandbox,
        "runtime-default",
        linux=security(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)),
    )
    result = crib.exec_sync(default, ["unshare", "-U", "true"])
    assert result.exit_code != 0
    assert b"Operation not permitted" in result.stderr
    status = crib.output(default, "cat", "/proc/self/status")
    assert "Seccomp:\t2" in status
    assert crib.info(default)["seccompProfile"] == "runtime/default"


def test_pid_namespace_modes(crib: CtrCrib) -> None:
    shared = crib.run_pod()  # kubelet's shareProcessNamespace: pid POD for pod and containers
    first = running(crib, shared, "first")
    second = running(crib, shared, "second", command=["sleep", "2000"])
    # containers of a pod sharing its pid namespace see each other, the pause is pid 1
    assert "sleep 1000" in crib.output(second, "ps", "-o", "args")
    assert crib.output(first, "cat", "/proc/1/cmdline").split("\0")[0].endswith("catatonit")
    own = running(
        crib,
        shared,
        "own",
        linux=security(namespace_options=pb.NamespaceOption(pid=pb.NamespaceMode.CONTAINER)),
    )
    assert crib.output(own, "cat", "/proc/1/cmdline").startswith("sleep")
    target = running(
        crib,
        shared,
        "target",
        command=["sleep", "3000"],
        linux=security(
            namespace_options=pb.NamespaceOption(pid=pb.NamespaceMode.TARGET, target_id=own)
        ),
    )
    assert crib.output(target, "cat", "/proc/1/cmdline").startswith("sleep")
    assert "sleep 3000" in crib.output(own, "ps", "-o", "args")
    crib.pods.remove_pod(shared[0])
