"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

    with running_registry() as registry:                     # anonymous, plain HTTP
        push_image(registry, "test/busybox", "1", image)    # (tests/imagebuild.py)
        registry.host                                        # "127.0.0.1:<free port>"
    with running_registry(users={"alice": "secret"}) as r:   # HTTP basic auth (htpasswd, bcrypt)

Each registry gets its own temporary storage directory and a free port, and is stopped (by
pid) and removed when the block ends, also when the test fails.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import bcrypt
import yaml

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    """One docker-registry process with its own storage."""

    def __init__(self, users: dict[str, str] | None = None, prefix: str = "cimg-reg-") -> None:
        self.base_dir = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.storage_dir = os.path.join(self.base_dir, "storage")
        self.users = dict(users or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.base_dir, "registry.log")

    @property
    def host(self) -> str:
        """host:port, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL (plain HTTP)."""
        return f"http://{self.host}"

    def _write_config(self) -> str:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": self.storage_dir},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "crib-test-secret"},
        }
        if self.users:
            htpasswd = os.path.join(self.base_dir, "htpasswd")
            with open(htpasswd, "w") as f:
                for user, password in self.users.items():
                    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
                    f.write(f"{user}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "crib-test", "path": htpasswd}}
        path = os.path.join(self.base_dir, "config.yml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path

    def start(self) -> None:
        """Start on a free port; retries with another port if that one was taken meanwhile."""
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise RuntimeError(f"{REGISTRY_BINARY} not installed (deploy/install-packages.sh test)")
        for _ in range(5):
            self.port = free_port()
            config = self._write_config()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [binary, "serve", config],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/v2/")
                    if conn.getresponse().status in (200, 401):
                        return True
                finally:
                    conn.close()
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the registry process (ours, by pid). Storage stays until `cleanup`."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        """Start again on the same port and storage (after `stop`)."""
        config = self._write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", config],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not self._wait_ready():
            raise RuntimeError(f"docker-registry did not restart:\n{self.log()}")

    def blob_path(self, digest: str) -> str:
        """Where the registry keeps blob `digest` (to corrupt it in tests)."""
        algorithm, _, encoded = digest.partition(":")
        return os.path.join(
            self.storage_dir,
            "docker/registry/v2/blobs",
            algorithm,
            encoded[:2],
            encoded,
            "data",
        )

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        """Stop and remove everything."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


@contextlib.contextmanager
def running_registry(users: dict[str, str] | None = None) -> Iterator[Registry]:
    """A started registry, stopped and removed afterwards even when the test fails."""
    registry = Registry(users)
    try:
        registry.start()
        yield registry
    finally:
        registry.cleanup()
