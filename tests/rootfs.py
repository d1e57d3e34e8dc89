"""Root filesystems and OCI bundles for kernel tests: Debian's static busybox plus the probe.

    rootfs = build_rootfs(tmp_dir)                  # bin/busybox (+ applet links), bin/probe
    bundle = make_bundle(tmp_dir / "b", rootfs, ["/bin/probe", "ids"], hostname="x")

`base_spec` is what `runc spec` writes (runc 1.1), with the probe as the process, so the
same bundle means the same thing to runc, crun and crib-runtime.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

BUSYBOX = "/bin/busybox"
PROBE_SOURCE = pathlib.Path(__file__).parent / "kernel" / "probe.c"
APPLETS = ("sh", "true", "false", "sleep", "cat", "echo", "ls", "id", "hostname", "mount", "ps")

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

BASE_SPEC: dict[str, Any] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/probe"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": DEFAULT_CAPS,
            "effective": DEFAULT_CAPS,
            "permitted": DEFAULT_CAPS,
            "ambient": DEFAULT_CAPS,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [
            {"type": "pid"},
            {"type": "network"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "cgroup"},
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    },
}


def base_spec(args: list[str] | None = None) -> dict[str, Any]:
    """A deep copy of `BASE_SPEC`, with `args` as process.args when given."""
    spec = copy.deepcopy(BASE_SPEC)
    if args is not None:
        spec["process"]["args"] = args
    return spec


def compile_probe(out_path: pathlib.Path) -> pathlib.Path:
    """gcc -static the probe (crun's tests build their init.c the same way)."""
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(out_path), str(PROBE_SOURCE)],
        check=True,
        capture_output=True,
    )
    return out_path


def build_rootfs(directory: pathlib.Path, probe: pathlib.Path | None = None) -> pathlib.Path:
    """A minimal rootfs: busybox with applet links, the probe, /etc/passwd and /etc/group."""
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        link = rootfs / "bin" / applet
        if not link.exists():
            os.symlink("busybox", link)
    if probe is None:
        probe = compile_probe(directory / "probe")
    shutil.copy2(probe, rootfs / "bin" / "probe")
    for name in ("proc", "sys", "dev", "tmp", "etc", "home/user", "var"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    return rootfs


def make_bundle(bundle: pathlib.Path, rootfs: pathlib.Path, spec: dict[str, Any]) -> pathlib.Path:
    """A bundle directory whose config.json is `spec` with root.path pointing at `rootfs`."""
    bundle.mkdir(parents=True, exist_ok=True)
    spec = copy.deepcopy(spec)
    spec["root"]["path"] = str(rootfs)
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle
