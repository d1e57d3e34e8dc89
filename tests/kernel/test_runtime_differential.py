"""Differential tests: the same bundle through crib-runtime and runc, the probe's view compared.

Each test builds a spec from `base_spec` (what `runc spec` writes), runs it through both
runtimes with the driver (create, start, wait, delete), and asserts that the probe inside
printed the same JSON and exited the same way. The harness also asserts that neither
runtime left a cgroup, a state directory or a mount behind.
"""

from __future__ import annotations

import secrets
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from tests.rootfs import base_spec

if TYPE_CHECKING:
    from tests.kernel.runtime_harness import Runner

pytestmark = pytest.mark.root
pytest_plugins = ("tests.kernel.runtime_harness",)

ALL_CAPS_SOME = [
    "CAP_CHOWN",
    "CAP_KILL",
    "CAP_NET_RAW",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SYS_ADMIN",
]


def same(crib: Runner, runc: Runner, spec: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Run `spec` through both; assert equal observations; return crib's result."""
    ours = crib.run(spec, **kwargs)
    theirs = runc.run(spec, **kwargs)
    assert ours["create_exit_code"] == theirs["create_exit_code"] == 0, (ours, theirs)
    assert ours["output"] == theirs["output"], f"\ncrib: {ours['output']}\nrunc: {theirs['output']}"
    assert ours["exit_code"] == theirs["exit_code"], (ours, theirs)
    assert ours["state_created"] == theirs["state_created"] == "created"
    for mine, peer in zip(ours.get("execs", []), theirs.get("execs", []), strict=True):
        assert mine["output"] == peer["output"], f"\ncrib: {mine}\nrunc: {peer}"
        assert mine["exit_code"] == peer["exit_code"]
    return ours


def test_hostname(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "hostname"])
    spec["hostname"] = "crt-host"
    out = same(crib, runc, spec)["output"]
    assert out["hostname"]["nodename"] == "crt-host"
    # runc 1.1 predates `domainname` (runtime-spec 1.1); crib sets it.
    spec["domainname"] = "crt.example"
    assert crib.run(spec)["output"]["hostname"]["domainname"] == "crt.example"


def test_pid_namespace_makes_init_pid_1(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "pid"]))["output"]
    assert out["pid"] == {"pid": 1, "ppid": 0}


def test_network_namespace_has_only_loopback(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "net"]))["output"]
    assert out["net"] == ["lo"]


def test_ipc_namespace_is_empty(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "file:/proc/sysvipc/shm", "ls:/dev/mqueue"]))
    assert out["output"]["ls:/dev/mqueue"] == []


def test_mount_table(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "mounts"]))["output"]
    assert "/ ext4 ro private" in out["mounts"] or any(m.startswith("/ ") for m in out["mounts"])


def test_dev_contents(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "ls:/dev", "ls:/dev/pts"]))["output"]
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd"} <= set(out["ls:/dev"])


def test_cgroup_namespace_and_mount(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "cgroup", "ls:/sys/fs/cgroup"]))["output"]
    assert all(line.endswith(":/") for line in out["cgroup"].splitlines())


def test_user_namespace_with_mappings(crib: Runner, runc: Runner) -> None:
    spec = base_spec(
        ["/bin/probe", "ids", "caps", "file:/proc/self/uid_map", "file:/proc/self/gid_map"]
    )
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    # sysfs of a network namespace owned by the new user namespace mounts fine; the
    # cgroup v1 mount of the default spec needs host privileges: drop it as rootless specs do.
    spec["mounts"] = [m for m in spec["mounts"] if m["type"] != "cgroup"]
    out = same(crib, runc, spec)["output"]
    assert out["ids"]["uid"] == 0
    assert "100000" in out["file:/proc/self/uid_map"]


def test_join_network_namespace_by_path(crib: Runner, runc: Runner) -> None:
    netns = f"crt-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(
            ["ip", "-n", netns, "link", "add", "crt0", "type", "veth", "peer", "name", "crt1"],
            check=True,
        )
        spec = base_spec(["/bin/probe", "net"])
        spec["linux"]["namespaces"] = [
            ns if ns["type"] != "network" else {"type": "network", "path": f"/run/netns/{netns}"}
            for ns in spec["linux"]["namespaces"]
        ]
        out = same(crib, runc, spec)["output"]
        assert out["net"] == ["crt0", "crt1", "lo"]
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def test_readonly_root(crib: Runner, runc: Runner) -> None:
    out = same(crib, runc, base_spec(["/bin/probe", "write:/crt-file", "write:/tmp/crt-file"]))
    assert out["output"]["write:/crt-file"] == {"errno": 30}


def test_writable_root(crib: Runner, runc: Runner, crt_tmp: Any) -> None:
    spec = base_spec(["/bin/probe", "mounts"])
    spec["root"]["readonly"] = False
    out = same(crib, runc, spec)["output"]
    assert any(m.startswith("/ ") and " rw" in m for m in out["mounts"])


def test_masked_paths(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "file:/proc/kcore", "ls:/sys/firmware", "file:/proc/cpuinfo"])
    spec["linux"]["maskedPaths"].append("/proc/cpuinfo")
    out = same(crib, runc, spec)["output"]
    assert out["file:/proc/cpuinfo"] == ""
    assert out["ls:/sys/firmware"] == []


def test_readonly_paths(crib: Runner, runc: Runner) -> None:
    spec = base_spec(
        ["/bin/probe", "write:/proc/sys/kernel/domainname", "write:/proc/sysrq-trigger"]
    )
    out = same(crib, runc, spec)["output"]
    assert out["write:/proc/sys/kernel/domainname"] == {"errno": 30}


@pytest.mark.parametrize("propagation", ["rprivate", "rslave", "rshared"])
def test_bind_mount_options_and_propagation(
    crib: Runner, runc: Runner, crt_tmp: Any, propagation: str
) -> None:
    source = crt_tmp / "shared-dir"
    source.mkdir()
    (source / "hello").write_text("from the host")
    spec = base_spec(["/bin/probe", "mounts", "file:/mnt/data/hello", "write:/mnt/data/new"])
    spec["mounts"].append(
        {
            "destination": "/mnt/data",
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec", propagation],
        }
    )
    out = same(crib, runc, spec)["output"]
    assert out["file:/mnt/data/hello"] == "from the host"
    assert out["write:/mnt/data/new"] == {"errno": 30}


def test_bind_mount_file(crib: Runner, runc: Runner, crt_tmp: Any) -> None:
    source = crt_tmp / "resolv.conf"
    source.write_text("nameserver 127.0.0.1")
    spec = base_spec(["/bin/probe", "file:/etc/resolv.conf"])
    spec["mounts"].append(
        {
            "destination": "/etc/resolv.conf",
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "ro"],
        }
    )
    out = same(crib, runc, spec)["output"]
    assert out["file:/etc/resolv.conf"] == "nameserver 127.0.0.1"


def test_capabilities_all_five_sets(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "caps"])
    spec["process"]["capabilities"] = {
        "bounding": ALL_CAPS_SOME,
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"],
    }
    out = same(crib, runc, spec)["output"]
    assert out["caps"]["CapAmb"] != "0000000000000000"


def test_capabilities_of_a_non_root_user(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "caps", "ids"])
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["process"]["capabilities"] = {
        "bounding": ALL_CAPS_SOME,
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"],
    }
    same(crib, runc, spec)


def test_no_capabilities_at_all(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "caps"])
    spec["process"]["capabilities"] = {}
    out = same(crib, runc, spec)["output"]
    assert out["caps"]["CapBnd"] == "0000000000000000"


def test_seccomp_denies_mkdir_with_eperm(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "status", "mkdir:/tmp/crt-dir", "file:/etc/group"])
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["crt_no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    out = same(crib, runc, spec)["output"]
    assert out["mkdir:/tmp/crt-dir"] == {"errno": 1}
    assert out["status"]["Seccomp"] == "2"


def test_seccomp_without_no_new_privs(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "status", "mkdir:/tmp/crt-dir"])
    spec["process"]["noNewPrivileges"] = False
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "args": [{"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["mkdirat"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "args": [{"index": 2, "value": 0o755, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    out = same(crib, runc, spec)["output"]
    assert out["mkdir:/tmp/crt-dir"] == {"errno": 13}


def test_memory_limit_oom_kill(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "alloc:256"])
    limit = 32 * 1024 * 1024
    spec["linux"]["resources"]["memory"] = {"limit": limit, "swap": limit}
    result = same(crib, runc, spec)
    assert result["exit_code"] == -9


def test_pids_limit(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "fork:20"])
    spec["linux"]["resources"]["pids"] = {"limit": 8}
    out = same(crib, runc, spec)["output"]
    assert out["forked"] == 7


def test_rlimits(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "rlimits"])
    spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
        {"type": "RLIMIT_NPROC", "hard": 4000, "soft": 3000},
    ]
    out = same(crib, runc, spec)["output"]
    assert out["rlimits"]["nofile"] == [256, 512]


def test_user_groups_and_home(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "ids", "env"])
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 10, 1000]}
    out = same(crib, runc, spec)["output"]
    assert out["ids"]["groups"] == [5, 10, 1000]
    assert "HOME=/home/user" in out["env"]


def test_umask(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "status"])
    spec["process"]["user"]["umask"] = 0o077
    out = same(crib, runc, spec)["output"]
    assert out["status"]["Umask"] == "0077"


def test_cwd(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "cwd"])
    spec["process"]["cwd"] = "/tmp"
    assert same(crib, runc, spec)["output"]["cwd"] == "/tmp"


def test_env(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "env"])
    spec["process"]["env"] += ["CRT_A=1", "CRT_B=two words", "HOME=/srv"]
    out = same(crib, runc, spec)["output"]
    assert "CRT_B=two words" in out["env"]


def test_args_resolved_through_path(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["probe", "pid"])
    same(crib, runc, spec)


def test_exit_code(crib: Runner, runc: Runner) -> None:
    result = same(crib, runc, base_spec(["/bin/probe", "pid", "exit:3"]))
    assert result["exit_code"] == 3


def test_sysctls(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "sysctl:net.ipv4.ip_forward", "sysctl:kernel.shm_rmid_forced"])
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    out = same(crib, runc, spec)["output"]
    assert out["sysctl:net.ipv4.ip_forward"] == "1"


def test_oom_score_adj(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "oom"])
    spec["process"]["oomScoreAdj"] = 500
    assert same(crib, runc, spec)["output"]["oom"] == "500"


def test_devices(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "ls:/dev", "file:/dev/crt-zero"])
    spec["linux"]["devices"] = [
        {"path": "/dev/crt-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640}
    ]
    spec["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
    )
    out = same(crib, runc, spec)["output"]
    assert "crt-zero" in out["ls:/dev"]


def test_no_new_privileges_off(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "status"])
    spec["process"]["noNewPrivileges"] = False
    assert same(crib, runc, spec)["output"]["status"]["NoNewPrivs"] == "0"


def test_tty_via_console_socket(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "tty"])
    spec["process"]["terminal"] = True
    out = same(crib, runc, spec, console=True)["output"]
    assert out["tty"]["stdin"] == 1
    assert out["tty"]["name"].startswith("/dev/pts/")


def test_exec_into_running_container(crib: Runner, runc: Runner) -> None:
    spec = base_spec(["/bin/probe", "sleep:30"])
    process = dict(spec["process"])
    # (no "status": the exec's pid inside the namespace differs, runc forks more on the way)
    process["args"] = ["/bin/probe", "ids", "caps", "env", "cwd", "hostname", "exit:4"]
    process["env"] = [*process["env"], "CRT_EXEC=1"]
    process["cwd"] = "/tmp"
    result = same(crib, runc, spec, execs=[process], kill_after_exec=True)
    assert result["execs"][0]["exit_code"] == 4
    assert result["exit_code"] == -9
