"""The pod's pure parts: pause OCI config, pod files, cgroup paths and cleanup on fixture
trees, the pause root, sandbox records and their state machine."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil

import pytest

from cni import config as cniconfig
from cni.cache import Attachment
from cni.manager import PortMapping
from cri.pods.records import (
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
    check_transition,
)
from sandbox.pod import cgroup, files, rootfs
from sandbox.pod.errors import PodConfigError
from sandbox.pod.pause import PauseProcess
from sandbox.pod.spec import (
    PauseSpec,
    PidMode,
    PodNamespaces,
    allowed_oom_score_adj,
    pause_config,
)


def spec(**changes: object) -> PauseSpec:
    base = PauseSpec(
        args=("/usr/bin/catatonit", "-P"),
        rootfs="/var/lib/crib/pause/rootfs",
        hostname="web",
        namespaces=PodNamespaces(),
        cgroups_path="/kubepods/pod1/crib-abc",
        shm_path="/run/crib/pods/abc/shm",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_pause_has_no_capabilities_and_a_read_only_root() -> None:
    config = pause_config(spec())
    process = config["process"]
    assert process["args"] == ["/usr/bin/catatonit", "-P"]
    assert all(v == [] for v in process["capabilities"].values())
    assert set(process["capabilities"]) == {
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    }
    assert process["noNewPrivileges"] is True
    assert config["root"] == {"path": "/var/lib/crib/pause/rootfs", "readonly": True}
    assert config["linux"]["cgroupsPath"] == "/kubepods/pod1/crib-abc"
    assert config["linux"]["resources"]["cpu"]["shares"] == 2
    assert config["hostname"] == "web"
    shm = [m for m in config["mounts"] if m["destination"] == "/dev/shm"]
    assert shm[0]["source"] == "/run/crib/pods/abc/shm"


@pytest.mark.parametrize(
    ("namespaces", "new", "pinned"),
    [
        (PodNamespaces(), {"mount", "network", "uts", "ipc", "pid"}, {"net", "uts", "ipc", "pid"}),
        (PodNamespaces(host_network=True), {"mount", "ipc", "pid"}, {"ipc", "pid"}),
        (PodNamespaces(host_ipc=True), {"mount", "network", "uts", "pid"}, {"net", "uts", "pid"}),
        (
            PodNamespaces(pid=PidMode.CONTAINER),
            {"mount", "network", "uts", "ipc", "pid"},
            {"net", "uts", "ipc"},
        ),
        (
            PodNamespaces(pid=PidMode.NODE),
            {"mount", "network", "uts", "ipc"},
            {"net", "uts", "ipc"},
        ),
    ],
)
def test_namespaces_per_mode(namespaces: PodNamespaces, new: set[str], pinned: set[str]) -> None:
    config = pause_config(spec(namespaces=namespaces))
    assert {ns["type"] for ns in config["linux"]["namespaces"]} == new
    assert all("path" not in ns for ns in config["linux"]["namespaces"])
    assert set(namespaces.pinned_kinds()) == pinned


def test_host_network_pause_sets_no_hostname_and_host_ipc_no_mqueue() -> None:
    config = pause_config(spec(namespaces=PodNamespaces(host_network=True, host_ipc=True)))
    assert "hostname" not in config
    assert "/dev/mqueue" not in [m["destination"] for m in config["mounts"]]


def test_sysctls_and_user_pass_through() -> None:
    config = pause_config(
        spec(sysctls={"net.core.somaxconn": "1024"}, uid=65535, gid=65535, additional_gids=(5,))
    )
    assert config["linux"]["sysctl"] == {"net.core.somaxconn": "1024"}
    assert config["process"]["user"] == {"uid": 65535, "gid": 65535, "additionalGids": [5]}


def test_oom_score_adj_clamped_without_cap_sys_resource(tmp_path: pathlib.Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t000001fffeffffff\n")  # bit 24 missing
    assert allowed_oom_score_adj(-998, str(status)) >= 0
    status.write_text("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert allowed_oom_score_adj(-998, str(status)) == -998


def test_resolv_conf_from_dns_config_or_host(tmp_path: pathlib.Path) -> None:
    dns = files.DnsConfig(
        servers=("10.96.0.10", "fd00::a"), searches=("ns.svc.cluster.local",), options=("ndots:5",)
    )
    assert files.resolv_conf(dns) == (
        b"search ns.svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
    )
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\n")
    assert files.resolv_conf(files.DnsConfig(), str(host)) == b"nameserver 192.0.2.53\n"


def test_hosts_file_names_the_pod() -> None:
    text = files.hosts("web-0", ["10.123.0.5", "fd00::5"]).decode()
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert "10.123.0.5\tweb-0\n" in text
    assert "fd00::5\tweb-0\n" in text


def test_cgroup_leaf_paths() -> None:
    assert (
        cgroup.leaf_path("/kubepods/burstable/pod1", "abc") == "/kubepods/burstable/pod1/crib-abc"
    )
    assert cgroup.leaf_path("", "abc") == "/crib/crib-abc"
    assert cgroup.leaf_path("/kubepods//pod1/", "abc") == "/kubepods/pod1/crib-abc"
    with pytest.raises(PodConfigError):
        cgroup.validate_parent("system.slice:crib:x")


def test_remove_leaf_on_v1_tree(tmp_path: pathlib.Path) -> None:
    for hierarchy in ("cpu,cpuacct", "memory", "pids", "unified"):
        (tmp_path / hierarchy / "kubepods" / "crib-abc").mkdir(parents=True)
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    assert cgroup.exists("/kubepods/crib-abc", str(tmp_path))
    assert cgroup.remove_leaf("/kubepods/crib-abc", str(tmp_path)) == []
    assert not cgroup.exists("/kubepods/crib-abc", str(tmp_path))
    assert (tmp_path / "memory" / "kubepods").is_dir()  # the parent is kubelet's
    assert cgroup.remove_leaf("/kubepods/crib-abc", str(tmp_path)) == []  # idempotent


def test_remove_leaf_on_v2_tree_reports_busy(tmp_path: pathlib.Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    leaf = tmp_path / "kubepods" / "crib-abc"
    leaf.mkdir(parents=True)
    (leaf / "cgroup.procs").write_text("")  # a non-empty dir: rmdir fails like EBUSY would
    left = cgroup.remove_leaf("/kubepods/crib-abc", str(tmp_path), attempts=1)
    assert left == [str(leaf)]
    (leaf / "cgroup.procs").unlink()
    assert cgroup.remove_leaf("/kubepods/crib-abc", str(tmp_path)) == []


def test_pause_root_holds_only_a_static_binary(tmp_path: pathlib.Path) -> None:
    catatonit = shutil.which("catatonit")
    if catatonit is None:
        pytest.skip("catatonit is not installed")
    assert rootfs.is_static_elf(catatonit)
    assert not rootfs.is_static_elf("/bin/sh")
    in_root = rootfs.ensure_rootfs(str(tmp_path / "rootfs"), catatonit)
    assert in_root == "/usr/bin/catatonit"
    assert (tmp_path / "rootfs/usr/bin/catatonit").read_bytes() == pathlib.Path(
        catatonit
    ).read_bytes()
    with pytest.raises(PodConfigError, match="not a statically linked"):
        rootfs.ensure_rootfs(str(tmp_path / "other"), "/bin/sh")


def test_sandbox_record_round_trip() -> None:
    network = cniconfig.default_network("cpod0", "10.123.0.0/24")
    meta = SandboxMetadata(
        name="web",
        namespace="default",
        uid="u1",
        attempt=1,
        cri_name="k8s_POD_web_default_u1_1",
        created_at_ns=123,
        runtime_handler="runc",
        labels={"app": "web"},
        annotations={"a": "b"},
        hostname="web",
        log_directory="/var/log/pods/x",
        cgroup_parent="/kubepods",
        cgroups_path="/kubepods/crib-x",
        namespaces=PodNamespaces(host_ipc=True, pid=PidMode.CONTAINER),
        port_mappings=(PortMapping(80, 8080, "tcp", "127.0.0.1"),),
        dns=files.DnsConfig(servers=("10.0.0.10",)),
        sysctls={"net.core.somaxconn": "1"},
        run_dir="/run/crib/pods/x",
        config={"metadata": {"name": "web"}},
    )
    assert SandboxMetadata.from_json(meta.to_json()) == meta
    status = SandboxStatus(SandboxState.CREATING).moved_to(
        SandboxState.READY,
        pause=PauseProcess(pid=10, start_time=20, conmon_pid=9),
        namespace_paths={"net": "/run/crib/ns/net/x"},
        attachment=Attachment(
            network=network,
            container_id="x",
            ifname="eth0",
            netns="/run/crib/ns/net/x",
            cni_args=(("IgnoreUnknown", "1"),),
            capability_args={"portMappings": []},
            result={"cniVersion": "1.0.0"},
        ),
        ips=("10.123.0.2",),
    )
    again = SandboxStatus.from_json(status.to_json())
    assert again == status


def test_state_machine_table() -> None:
    check_transition(SandboxState.CREATING, SandboxState.READY)
    check_transition(SandboxState.READY, SandboxState.NOT_READY)
    check_transition(SandboxState.NOT_READY, SandboxState.NOT_READY)
    with pytest.raises(ValueError, match="not_ready cannot become ready"):
        check_transition(SandboxState.NOT_READY, SandboxState.READY)
    with pytest.raises(ValueError, match="ready cannot become creating"):
        SandboxStatus(SandboxState.READY).moved_to(SandboxState.CREATING)
