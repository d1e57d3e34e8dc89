"""Status features that come with containers: SupplementalGroupsPolicy, and recursive
read-only mounts per handler as the handler's `features` output says."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys

import pytest

from cri.api import api_pb2 as pb
from cri.config import Config, RuntimeHandlerConfig
from cri.rpc import runtime_status
from cri.service import CriService


def fake_runtime(tmp_path: pathlib.Path, name: str, features: object | None) -> str:
    """A runtime whose `features` prints `features` (None: it has no such command)."""
    script = tmp_path / name
    if features is None:
        body = "import sys\nsys.stderr.write('unknown command features\\n')\nsys.exit(1)\n"
    else:
        body = f"import sys\nprint({json.dumps(json.dumps(features))})\n"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def service(tmp_path: pathlib.Path) -> CriService:
    runtimes = {
        "new": RuntimeHandlerConfig(
            path=fake_runtime(tmp_path, "new", {"mountOptions": ["ro", "rro", "rbind"]})
        ),
        "old": RuntimeHandlerConfig(path=fake_runtime(tmp_path, "old", None)),
        "plain": RuntimeHandlerConfig(
            path=fake_runtime(tmp_path, "plain", {"mountOptions": ["ro"]})
        ),
        "absent": RuntimeHandlerConfig(path=str(tmp_path / "no-such-runtime")),
    }
    config = Config(
        root=str(tmp_path / "root"),
        state=str(tmp_path / "state"),
        runtimes=runtimes,
        default_runtime="new",
    )
    return CriService(config)


def test_features_per_handler(service: CriService) -> None:
    asyncio.run(service.probe_runtimes())
    assert service.handler_rro == {"new": True, "old": False, "plain": False, "absent": False}
    response = asyncio.run(runtime_status.handle(service, pb.StatusRequest()))
    features = {h.name: h.features.recursive_read_only_mounts for h in response.runtime_handlers}
    # rro also needs mount_setattr(2): Linux >= 5.12
    kernel_ok = service.host_facts("new").kernel_version >= (5, 12)
    assert features == {
        "": kernel_ok,
        "new": kernel_ok,
        "old": False,
        "plain": False,
        "absent": False,
    }
    assert response.features.supplemental_groups_policy is True
    assert not any(h.features.user_namespaces for h in response.runtime_handlers)
