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
