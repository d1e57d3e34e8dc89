"""Helpers for container e2e tests: a crib with its own network (tests/e2e/pods.py, prefix
`cctr`), a registry holding images the tests build, container configs, waits, CRI logs.

    with running_registry() as registry:
        push_test_images(registry)
        with ctr_crib("runc", registry) as crib:
            sandbox_id, pod_config = crib.run_pod()
            container_id = crib.create(sandbox_id, pod_config, crib.config("c", ["sleep", "9"]))
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cri.api import api_pb2 as pb
from tests import imagebuild as ib
from tests.e2e.pods import PodCrib, pod_crib
from tests.handlers import HANDLERS
from tests.leakcheck import leak_check
from tests.registry import Registry, running_registry

PREFIX = "cctr"
TEST_RANGE = "10.124."
REPO = "cctr"

EXTRA_APPLETS = ("unshare", "chown", "dd", "tr", "printf", "setsid")

# The images the container tests run (built in memory, pushed to the test registry).
IMAGES: dict[str, Callable[[], ib.Image]] = {
    # + applets tests/imagebuild.py does not link (busybox dispatches on argv[0])
    "busybox": lambda: ib.busybox_image(
        extra_layers=[ib.Layer([ib.symlink(f"bin/{a}", "busybox") for a in EXTRA_APPLETS])],
    ),
    "app-user": lambda: ib.busybox_image(user="app", working_dir="/home/app/work"),
    "stop-usr1": lambda: ib.busybox_image(stop_signal="SIGUSR1"),
    "volume": lambda: ib.busybox_image(
        cmd=None,
        extra_layers=[ib.Layer([ib.directory("data"), ib.file("data/hello", b"from the image\n")])],
    ),
}


def push_test_images(registry: Registry) -> None:
    """Push every image of IMAGES as <registry>/cctr/<name>:1."""
    for name, build in IMAGES.items():
        ib.push_image(registry, f"{REPO}/{name}", "1", build())


@dataclasses.dataclass(frozen=True)
class LogRecord:
    """One line of a CRI log (docs/conmon.md 7)."""

    timestamp: datetime.datetime
    stream: str
    tags: tuple[str, ...]
    content: str


LOG_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.(?P<frac>\d{9})(?P<tz>Z|[+-]\d\d:\d\d)) "
    r"(?P<stream>stdout|stderr) (?P<tags>[A-Z](?::[A-Z])*) (?P<content>.*)$"
)


def parse_log(path: str) -> list[LogRecord]:
    """Every record of a CRI log; a line that is not one fails the test."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f.read().split("\n")[:-1]:
            match = LOG_LINE.match(line)
            assert match, f"not a CRI log line: {line!r}"
            ts = match["ts"].replace(match["frac"], match["frac"][:6])
            records.append(
                LogRecord(
                    timestamp=datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")),
                    stream=match["stream"],
                    tags=tuple(match["tags"].split(":")),
                    content=match["content"],
                )
            )
    return records


def log_text(records: list[LogRecord], stream: str = "stdout") -> str:
    """The stream's bytes as the container wrote them (P records joined, F ends a line)."""
    text = ""
    for record in records:
        if record.stream == stream:
            text += record.content + ("\n" if "F" in record.tags else "")
    return text


class CtrCrib:
    """A pod crib plus the registry its images come from."""

    def __init__(self, pods: PodCrib, registry: Registry, repo: str = REPO) -> None:
        self.pods = pods
        self.registry = registry
        self.repo = repo
        self.handler = pods.handler
        self.base_dir = pods.base_dir
        self.log_root = os.path.join(self.base_dir, "logs")
        self._pulled: set[str] = set()

    def runtime(self) -> Any:
        return self.pods.runtime()

    def images(self) -> Any:
        return self.pods.daemon.images()

    def image(self, name: str) -> str:
        """The reference of test image `name`, pulled into crib on first use."""
        ref = f"{self.registry.host}/{self.repo}/{name}:1"
        if ref not in self._pulled:
            self.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
            self._pulled.add(ref)
        return ref

    # -- pods -------------------------------------------------------------------------------

    def run_pod(self, **fields: Any) -> tuple[str, pb.PodSandboxConfig]:
        """A ready pod with a log directory; returns (sandbox id, its config)."""
        name = fields.pop("name", f"pod-{secrets.token_hex(3)}")
        fields.setdefault("log_directory", os.path.join(self.log_root, name))
        config = self.pods.pod_config(name, **fields)
        return self.pods.run_pod(config), config

    # -- containers -------------------------------------------------------------------------

    def config(
        self, name: str, command: list[str] | None = None, image: str = "busybox", **fields: Any
    ) -> pb.ContainerConfig:
        """A ContainerConfig for test image `image` logging to <name>.log."""
        fields.setdefault("log_path", f"{name}.log")
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=fields.pop("attempt", 0)),
            image=pb.ImageSpec(image=self.image(image)),
            command=command or [],
            **fields,
        )

    def create(
        self,
        sandbox_id: str,
        pod_config: pb.PodSandboxConfig,
        config: pb.ContainerConfig,
        **kwargs: Any,
    ) -> str:
        response = self.runtime().CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=config, sandbox_config=pod_config
            ),
            **kwargs,
        )
        return str(response.container_id)

    def start(self, container_id: str) -> None:
        self.runtime().StartContainer(pb.StartContainerRequest(container_id=container_id))

    def run(
        self, sandbox_id: str, pod_config: pb.PodSandboxConfig, config: pb.ContainerConfig
    ) -> str:
        """Create and start; returns the container id."""
        container_id = self.create(sandbox_id, pod_config, config)
        self.start(container_id)
        return container_id

    def stop(self, container_id: str, timeout_s: int = 0) -> None:
        self.runtime().StopContainer(
            pb.StopContainerRequest(container_id=container_id, timeout=timeout_s),
            timeout=timeout_s + 60,
        )

    def remove(self, container_id: str) -> None:
        self.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=container_id))

    def status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatusResponse:
        return self.runtime().ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        )

    def info(self, container_id: str) -> dict[str, Any]:
        return dict(json.loads(self.status(container_id, verbose=True).info["info"]))

    def state(self, container_id: str) -> int:
        return int(self.status(container_id).status.state)

    def list(self, **flt: Any) -> list[pb.Container]:
        request = pb.ListContainersRequest(filter=pb.ContainerFilter(**flt) if flt else None)
        return list(self.runtime().ListContainers(request).containers)

    def exec_sync(
        self, container_id: str, cmd: list[str], timeout_s: int = 30
    ) -> pb.ExecSyncResponse:
        return self.runtime().ExecSync(
            pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout_s),
            timeout=timeout_s + 60,
        )

    def output(self, container_id: str, *cmd: str) -> str:
        """stdout of a command that must succeed."""
        result = self.exec_sync(container_id, list(cmd))
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result.stdout.decode()

    def wait_state(
        self, container_id: str, state: int, timeout_s: float = 30
    ) -> pb.ContainerStatus:
        """Poll ContainerStatus until the container is in `state`."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(container_id).status
            if status.state == state:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"container {container_id} is {pb.ContainerState.Name(status.state)},"
                    f" not {pb.ContainerState.Name(state)}"
                )
            time.sleep(0.05)

    def log_path(self, pod_config: pb.PodSandboxConfig, config: pb.ContainerConfig) -> str:
        return os.path.join(pod_config.log_directory, config.log_path)

    def remove_all(self) -> None:
        """Remove every container and pod (the pod's Remove removes its containers)."""
        self.pods.remove_all_pods()


@contextlib.contextmanager
def ctr_crib(
    handler: str, registry: Registry, prefix: str = PREFIX, repo: str = REPO, **config: Any
) -> Iterator[CtrCrib]:
    """A started crib (prefix cctr) that pulls from `registry`; cleaned up afterwards."""
    settings: dict[str, Any] = {"registries": {registry.host: {"insecure": True}}}
    settings.update(config)
    with pod_crib(handler, prefix=prefix, **settings) as pods:
        yield CtrCrib(pods, registry, repo)


def wait_for(predicate: Callable[[], object], timeout_s: float = 10, message: str = "") -> None:
    """Poll `predicate` until it is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(message or "condition not met in time")


# -- fixtures (import them into a test module) --------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """A registry holding the test images, for the module."""
    with running_registry() as reg:
        push_test_images(reg)
        yield reg


@pytest.fixture(scope="module", params=HANDLERS)
def crib(request: pytest.FixtureRequest, registry: Registry) -> Iterator[CtrCrib]:
    """A crib per runtime handler, shared by the module's tests."""
    with ctr_crib(request.param, registry) as crib:
        yield crib


@pytest.fixture(scope="module")
def no_ctr_leaks() -> Iterator[None]:
    """Fail the module's last test if it left cctr-named kernel objects behind."""
    yield from leak_check(PREFIX, TEST_RANGE)
