"""Pull + unpack of a ~100 MiB, 5-layer image from a local registry: crib vs containerd.

Both runtimes run in this process's session on their own temporary sockets and roots,
pull the same image from the same docker-registry on 127.0.0.1 (plain HTTP), and unpack
it into overlay layers before the pull returns. Each runtime pulls RUNS times (removing the
image and its layers in between); the median is reported, as MiB/s of compressed bytes and
as a ratio containerd/crib (> 1 means crib is faster).

    .venv/bin/python bench/pull.py          (run by `make bench`; needs root and containerd)
"""

from __future__ import annotations

import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cri.api import api_pb2 as pb  # noqa: E402
from tests import imagebuild as ib  # noqa: E402
from tests.e2e.daemon import running_crib  # noqa: E402
from tests.registry import running_registry  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LAYERS = 5
RANDOM_BYTES_PER_LAYER = 12 << 20  # incompressible part (media, packed data)
REAL_BYTES_PER_LAYER = 16 << 20  # binaries and libraries from this host (compressible)
MIB = 1 << 20


def real_files(limit_bytes: int, skip: int) -> list[ib.Entry]:
    """Regular files from /usr (deterministic order), as image entries."""
    entries: list[ib.Entry] = []
    seen = 0
    total = 0
    for top in ("/usr/lib", "/usr/bin", "/usr/share"):
        for dir_path, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(dir_path, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                size = os.path.getsize(path)
                if size == 0 or size > 4 * MIB:
                    continue
                seen += 1
                if seen <= skip:
                    continue
                with open(path, "rb") as f:
                    entries.append(ib.file(f"real{path}", f.read(), mode=0o755))
                total += size
                if total >= limit_bytes:
                    return entries
    return entries


def build_image() -> ib.Image:
    layers = []
    skip = 0
    for i in range(LAYERS):
        files = real_files(REAL_BYTES_PER_LAYER, skip)
        skip += len(files)
        parents = sorted({os.path.dirname(e.name) for e in files})
        dirs = []
        for parent in parents:
            parts = parent.split("/")
            for n in range(1, len(parts) + 1):
                dirs.append("/".join(parts[:n]))
        entries = [ib.directory(d) for d in dict.fromkeys(dirs)]
        entries += files
        entries += [
            ib.file(
                f"data/layer{i}/blob{j}", ib.random_bytes(RANDOM_BYTES_PER_LAYER // 3, i * 10 + j)
            )
            for j in range(3)
        ]
        layers.append(ib.Layer([ib.directory("data"), ib.directory(f"data/layer{i}"), *entries]))
    return ib.Image(layers)


def bench_crib(registry_host: str, ref: str) -> list[float]:
    times = []
    config = {"registries": {registry_host: {"insecure": True}}, "log_level": "info"}
    with running_crib(**config) as crib:
        images = crib.images()
        for _ in range(RUNS):
            started = time.monotonic()
            images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=600)
            times.append(time.monotonic() - started)
            images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)))
    return times


CONTAINERD_CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


def bench_containerd(ref: str) -> list[float] | None:
    containerd, ctr = shutil.which("containerd"), shutil.which("ctr")
    if containerd is None or ctr is None:
        print("containerd: not installed (apt install containerd); no comparison")
        return None
    base = tempfile.mkdtemp(prefix="cimg-bench-ctd-", dir="/tmp")
    config_path = os.path.join(base, "config.toml")
    pathlib.Path(config_path).write_text(CONTAINERD_CONFIG.format(base=base))
    socket = os.path.join(base, "containerd.sock")
    log = open(os.path.join(base, "containerd.log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [containerd, "--config", config_path],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(socket):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(pathlib.Path(base, "containerd.log").read_text())
            time.sleep(0.05)
        base_cmd = [ctr, "--address", socket, "--namespace", "bench"]
        times = []
        for _ in range(RUNS):
            started = time.monotonic()
            subprocess.run(
                [*base_cmd, "image", "pull", "--plain-http", ref],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.monotonic() - started)
            subprocess.run(
                [*base_cmd, "image", "rm", "--sync", ref], check=True, stdout=subprocess.DEVNULL
            )
        return times
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        # Snapshots may still be mounted by nothing (ctr pull does not mount); remove all.
        subprocess.run(["umount", "-R", base], stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("bench/pull.py: needs root (overlay layers with owners and devices)")
        return 0
    print(f"pull benchmark: {LAYERS}-layer image, {RUNS} runs each")
    image = build_image()
    compressed = sum(len(layer.blob) for layer in image.layers)
    unpacked = sum(len(layer.tar) for layer in image.layers)
    print(f"image: {compressed / MIB:.1f} MiB compressed (gzip), {unpacked / MIB:.1f} MiB of tar")
    with running_registry() as registry:
        ib.push_image(registry, "bench/image", "1", image)
        ref = f"{registry.host}/bench/image:1"
        crib_times = bench_crib(registry.host, ref)
        ctd_times = bench_containerd(ref)
    crib_s = statistics.median(crib_times)
    print(
        f"crib:       median {crib_s:.2f} s  ({compressed / MIB / crib_s:.1f} MiB/s)"
        f"  runs {', '.join(f'{t:.2f}' for t in crib_times)}"
    )
    if ctd_times:
        ctd_s = statistics.median(ctd_times)
        print(
            f"containerd: median {ctd_s:.2f} s  ({compressed / MIB / ctd_s:.1f} MiB/s)"
            f"  runs {', '.join(f'{t:.2f}' for t in ctd_times)}"
        )
        print(f"ratio containerd/crib: {ctd_s / crib_s:.2f} (> 1: crib is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
