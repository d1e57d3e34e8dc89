"""Benchmark: create + start + wait of a `/bin/true` container, crib-runtime vs runc vs crun.

    .venv/bin/python bench/runtime.py [--runs N]

Every runtime runs the same bundle (runc's default spec, busybox rootfs) in the same
process, interleaved round by round so machine noise hits all alike. The benchmark is a
child subreaper (as conmon is) and times from spawning `create` until it has reaped the
container's init; `delete` follows each run, untimed. Prints p50/p90 per runtime and the
ratios of crib-runtime to each peer. Target: crib-runtime p50 <= 2x runc's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.binaries import resolve  # noqa: E402
from tests.rootfs import base_spec, build_rootfs, make_bundle  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
# The modules the crib-runtime console script loads, and their import-time budget.
RUNTIME_MODULES = (
    "sandbox.runtime.cli",
    "sandbox.runtime.create",
    "sandbox.runtime.commands",
    "sandbox.runtime.exec",
)
IMPORT_BUDGET_MS = 60.0


def import_time_ms() -> float:
    """Total self import time (`python -X importtime`) of crib-runtime's modules."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import " + ", ".join(RUNTIME_MODULES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    total_us = 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            field = line.split(":", 1)[1].split("|")[0].strip()
            if field.isdigit():
                total_us += int(field)
    return total_us / 1000


def one_run(
    runtime: str, root: pathlib.Path, bundle: pathlib.Path, spec: dict[str, object]
) -> float:
    container_id = f"crt-bench-{secrets.token_hex(4)}"
    spec = json.loads(json.dumps(spec))
    spec["linux"]["cgroupsPath"] = f"/{container_id}"  # type: ignore[index]
    (bundle / "config.json").write_text(json.dumps(spec))
    pid_file = bundle / "pid"
    started = time.perf_counter()
    subprocess.run(
        [
            runtime,
            "--root",
            str(root),
            "create",
            "--bundle",
            str(bundle),
            "--pid-file",
            str(pid_file),
            container_id,
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    init_pid = int(pid_file.read_text())
    subprocess.run([runtime, "--root", str(root), "start", container_id], check=True)
    os.waitpid(init_pid, 0)
    elapsed = time.perf_counter() - started
    subprocess.run([runtime, "--root", str(root), "delete", "--force", container_id], check=True)
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/runtime.py: needs root (namespaces, cgroups); skipped")
        return 0
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # Installed code has .pyc files; a source checkout may not (PYTHONDONTWRITEBYTECODE).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "sandbox", "common"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )
    runtimes = {"crib-runtime": resolve("crib-runtime")}
    for peer in ("runc", "crun"):
        runtimes[peer] = shutil.which(peer)
    available = {name: path for name, path in runtimes.items() if path}
    work = pathlib.Path(tempfile.mkdtemp(prefix="crt-bench-"))
    work.chmod(0o755)
    try:
        rootfs = build_rootfs(work)
        spec = base_spec(["/bin/true"])
        spec["root"]["path"] = str(rootfs)
        timings: dict[str, list[float]] = {name: [] for name in available}
        bundles = {name: make_bundle(work / name, rootfs, spec) for name in available}
        for name, path in list(available.items()):  # warm caches (page cache, pyc) once each
            try:
                one_run(path, work / f"root-{name}", bundles[name], spec)
            except subprocess.CalledProcessError:
                # e.g. crun 1.8 refuses this host's hybrid cgroup layout: report, go on.
                print(f"{name}: cannot run a container on this host, left out")
                del available[name]
                del timings[name]
        for _ in range(args.runs):
            for name, path in available.items():
                timings[name].append(one_run(path, work / f"root-{name}", bundles[name], spec))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"create+start+wait of /bin/true, {args.runs} runs each")
    print(f"{'runtime':<14}{'p50 ms':>10}{'p90 ms':>10}")
    p50 = {}
    for name, values in timings.items():
        p50[name] = percentile(values, 0.5)
        print(f"{name:<14}{p50[name] * 1000:>10.1f}{percentile(values, 0.9) * 1000:>10.1f}")
    for peer in ("runc", "crun"):
        if peer in p50 and "crib-runtime" in p50:
            ratio = p50["crib-runtime"] / p50[peer]
            print(f"crib-runtime / {peer} p50 ratio: {ratio:.2f}x")
    if "runc" in p50:
        verdict = "met" if p50["crib-runtime"] <= 2 * p50["runc"] else "NOT met"
        print(f"target crib-runtime p50 <= 2x runc: {verdict}")
    best_ms = min(import_time_ms() for _ in range(5))
    verdict = "met" if best_ms < IMPORT_BUDGET_MS else "NOT met"
    print(
        f"crib-runtime import time (python -X importtime, best of 5): {best_ms:.1f} ms;"
        f" target < {IMPORT_BUDGET_MS:.0f} ms: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
