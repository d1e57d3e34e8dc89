"""Start the real crib daemon on a temporary socket and roots, and talk to it as kubelet does."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import grpc
import yaml

from cri.api import api_pb2 as pb
from cri.api import api_pb2_grpc as pb_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]


class CribDaemon:
    """One crib process with its own config, socket, root and state directories.

    Paths live under a short directory in /tmp: a unix socket path must fit in 108 bytes.
    """

    def __init__(self, base_dir: str | None = None, **config: Any) -> None:
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="crib-e2e-", dir="/tmp")
        self._owns_base = base_dir is None
        self.socket_path = os.path.join(self.base_dir, "crib.sock")
        self.root = os.path.join(self.base_dir, "root")
        self.state = os.path.join(self.base_dir, "state")
        self.log_path = os.path.join(self.base_dir, "crib.log")
        self.config_path = os.path.join(self.base_dir, "crib.yaml")
        cni_dir = os.path.join(self.base_dir, "net.d")
        os.makedirs(cni_dir, exist_ok=True)
        self.config: dict[str, Any] = {
            "listen": self.socket_path,
            "root": self.root,
            "state": self.state,
            "log_level": "debug",
            "cni": {"conf_dir": cni_dir},
            "drain_timeout_s": 5,
        }
        self.config.update(config)
        self.process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def write_config(self) -> None:
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config, f)

    def spawn(self, *extra_args: str) -> subprocess.Popen[bytes]:
        """Start a crib process on this config without waiting for it."""
        self.write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "cri", "serve", "--config", self.config_path, *extra_args],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def start(self, timeout_s: float = 30) -> None:
        """Start crib and wait until Version answers."""
        self.process = self.spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crib exited {self.process.returncode}:\n{self.log()}")
            if os.path.exists(self.socket_path):
                try:
                    self.runtime().Version(pb.VersionRequest(), timeout=2)
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"crib did not answer within {timeout_s}s:\n{self.log()}")

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                f"unix:{self.socket_path}",
                options=[("grpc.max_send_message_length", 64 << 20)],
            )
        return self._channel

    def runtime(self) -> pb_grpc.RuntimeServiceStub:
        return pb_grpc.RuntimeServiceStub(self.channel())

    def images(self) -> pb_grpc.ImageServiceStub:
        return pb_grpc.ImageServiceStub(self.channel())

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait; returns the exit status."""
        self.close_channel()
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL, like a crash or the OOM killer."""
        self.close_channel()
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None

    def log(self) -> str:
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        """Stop crib if running and remove everything under the base directory."""
        with contextlib.suppress(Exception):
            self.kill()
        if self._owns_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)


@contextlib.contextmanager
def running_crib(**config: Any) -> Iterator[CribDaemon]:
    """A started crib, stopped and cleaned up afterwards even when the test fails."""
    daemon = CribDaemon(**config)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()
