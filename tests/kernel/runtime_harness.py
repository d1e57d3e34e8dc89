"""Fixtures of the crib-runtime kernel tests: rootfs, unique names, the driver, leak checks."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from common.binaries import resolve
from tests.kernel.leaks import cgroup_leftovers, mounts_under
from tests.rootfs import build_rootfs, make_bundle

DRIVER = pathlib.Path(__file__).parent / "oci_driver.py"
REPO = pathlib.Path(__file__).resolve().parents[2]


def crib_runtime() -> str:
    """The crib-runtime console script of this checkout's virtualenv."""
    path = resolve("crib-runtime")
    assert path, "crib-runtime is not installed (make deps-test)"
    return path


def peer_runtime(name: str) -> str:
    """runc or crun, or skip."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def unique(prefix: str = "crt") -> str:
    """A name for kernel objects: our prefix plus a random suffix."""
    return f"{prefix}-{secrets.token_hex(4)}"


class Runner:
    """Runs bundles through one runtime with a private --root and cgroup names."""

    def __init__(self, runtime: str, work: pathlib.Path, rootfs: pathlib.Path) -> None:
        self.runtime = runtime
        self.work = work
        self.rootfs = rootfs
        self.root = work / "state"

    def run(
        self,
        spec: dict[str, Any],
        *,
        execs: list[dict[str, Any]] | None = None,
        console: bool = False,
        kill_after_exec: bool = False,
        timeout_s: float = 30,
    ) -> dict[str, Any]:
        """Create, start, wait, delete; returns the driver's result (outputs parsed as JSON)."""
        container_id = unique()
        spec = json.loads(json.dumps(spec))
        spec.setdefault("linux", {}).setdefault("cgroupsPath", f"/{container_id}")
        bundle = make_bundle(self.work / container_id, self.rootfs, spec)
        exec_files = []
        for index, process in enumerate(execs or []):
            path = bundle / f"exec-{index}.json"
            path.write_text(json.dumps(process))
            exec_files.append(str(path))
        job = {
            "runtime": self.runtime,
            "root": str(self.root),
            "bundle": str(bundle),
            "id": container_id,
            "exec": exec_files,
            "console": console,
            "kill_after_exec": kill_after_exec,
            "timeout_s": timeout_s,
        }
        proc = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout_s + 30,
            check=False,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        result["id"] = container_id
        for key in ("stdout",):
            if key in result:
                result["output"] = parse_output(result[key])
        for run in result.get("execs", []):
            run["output"] = parse_output(run["stdout"])
        # Nothing may be left behind, whatever happened.
        assert cgroup_leftovers(container_id) == [], f"{self.runtime} left cgroups"
        assert not (self.root / container_id).exists(), f"{self.runtime} left its state dir"
        assert mounts_under(str(self.rootfs)) == [], f"{self.runtime} left mounts"
        return result

    def script(
        self, spec: dict[str, Any] | None, steps: list[list[str]], stdin: str = ""
    ) -> tuple[str, pathlib.Path, list[dict[str, Any]]]:
        """Run runtime commands in order under a subreaper (see oci_driver.run_steps).

        `{id}`, `{bundle}` and `{pid_file}` in steps are replaced. Returns the container
        id, the bundle and each step's result; asserts nothing was left behind.
        """
        container_id = unique()
        bundle = self.work / container_id
        if spec is not None:
            spec = json.loads(json.dumps(spec))
            spec.setdefault("linux", {}).setdefault("cgroupsPath", f"/{container_id}")
            make_bundle(bundle, self.rootfs, spec)
        else:
            bundle.mkdir(parents=True)
        names = {"id": container_id, "bundle": str(bundle), "pid_file": str(bundle / "pid")}
        steps = [[part.format(**names) for part in step] for step in steps]
        job = {
            "runtime": self.runtime,
            "root": str(self.root),
            "id": container_id,
            "steps": steps,
            "stdin": stdin,
        }
        proc = subprocess.run(
            [sys.executable, str(DRIVER), json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        results: list[dict[str, Any]] = json.loads(proc.stdout)["steps"]
        assert cgroup_leftovers(container_id) == [], f"{self.runtime} left cgroups"
        assert not (self.root / container_id).exists(), f"{self.runtime} left its state dir"
        assert mounts_under(str(self.rootfs)) == [], f"{self.runtime} left mounts"
        return container_id, bundle, results


def parse_output(text: str) -> Any:
    """The probe's JSON (its last line), or the raw text when it is not JSON."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return text


@pytest.fixture(scope="session")
def runtime_rootfs() -> Iterator[pathlib.Path]:
    """The busybox + probe rootfs, built once per session."""
    if shutil.which("gcc") is None or not os.path.exists("/bin/busybox"):
        pytest.skip("gcc and busybox-static are needed to build the test rootfs")
    # Its own 0755 directory: a user namespace's root (host uid 100000) must reach it, and
    # pytest's base temp dir is 0700.
    directory = pathlib.Path(tempfile.mkdtemp(prefix="crt-rootfs-"))
    directory.chmod(0o755)
    yield build_rootfs(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def crt_tmp() -> Iterator[pathlib.Path]:
    """A temp dir named with our prefix, removed afterwards."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="crt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def crib(crt_tmp: pathlib.Path, runtime_rootfs: pathlib.Path) -> Runner:
    """A Runner for crib-runtime."""
    (crt_tmp / "crib").mkdir()
    return Runner(crib_runtime(), crt_tmp / "crib", runtime_rootfs)


@pytest.fixture
def runc(crt_tmp: pathlib.Path, runtime_rootfs: pathlib.Path) -> Runner:
    """A Runner for Debian's runc (the oracle)."""
    (crt_tmp / "runc").mkdir()
    return Runner(peer_runtime("runc"), crt_tmp / "runc", runtime_rootfs)
