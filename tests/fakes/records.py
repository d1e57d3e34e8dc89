"""Small metadata/status types for exercising record stores."""

from __future__ import annotations

import dataclasses
from typing import Any, Self


@dataclasses.dataclass(frozen=True)
class ThingMetadata:
    name: str
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "labels": dict(self.labels)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(name=data["name"], labels=dict(data["labels"]))


@dataclasses.dataclass(frozen=True)
class ThingStatus:
    state: str
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "generation": self.generation}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(state=data["state"], generation=int(data["generation"]))


def sandbox_metadata(**changes: Any) -> Any:
    """A SandboxMetadata for store-level tests (pod "web" in "default")."""
    from cri.pods.records import SandboxMetadata
    from sandbox.pod.files import DnsConfig
    from sandbox.pod.spec import PodNamespaces

    fields: dict[str, Any] = {
        "name": "web",
        "namespace": "default",
        "uid": "u1",
        "attempt": 0,
        "cri_name": "k8s_POD_web_default_u1_0",
        "created_at_ns": 123,
        "runtime_handler": "runc",
        "labels": {"app": "web"},
        "annotations": {},
        "hostname": "web",
        "log_directory": "/var/log/pods/x",
        "cgroup_parent": "/kubepods/podu1",
        "cgroups_path": "/kubepods/podu1/crib-s1",
        "namespaces": PodNamespaces(),
        "port_mappings": (),
        "dns": DnsConfig(),
        "sysctls": {},
        "run_dir": "/run/crib/pods/s1",
        "config": {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}},
    }
    fields.update(changes)
    return SandboxMetadata(**fields)


def container_metadata(sandbox_id: str, **changes: Any) -> Any:
    """A ContainerMetadata for store-level tests (container "app" of `sandbox_id`)."""
    from cri.containers.records import ContainerMetadata

    fields: dict[str, Any] = {
        "name": "app",
        "attempt": 0,
        "cri_name": "k8s_app_web_default_u1_0",
        "sandbox_id": sandbox_id,
        "created_at_ns": 456,
        "runtime_handler": "runc",
        "image_id": "sha256:" + "a" * 64,
        "image_name": "example.com/app:1",
        "labels": {},
        "annotations": {},
        "log_path": "",
        "bundle_dir": "/run/crib/containers/c1",
        "persist_dir": "/var/lib/crib/container-exits/c1",
        "cgroups_path": "/kubepods/podu1/crib-c1",
        "tty": False,
        "stdin": False,
        "stdin_once": False,
        "config": {"metadata": {"name": "app"}},
    }
    fields.update(changes)
    return ContainerMetadata(**fields)
