"""Name reservations: a CRI name (e.g. `k8s_POD_<name>_<ns>_<uid>_<attempt>`) maps to one id.

kubelet retries creations with the same name; a second reservation of a name held by
another id is refused with ALREADY_EXISTS naming the holder, as CRI-O and containerd do.
"""

from __future__ import annotations

import threading

from common.errors import AlreadyExistsError


class NameReservedError(AlreadyExistsError):
    """The name is reserved for another id."""

    def __init__(self, name: str, holder_id: str) -> None:
        super().__init__(f"name {name!r} is reserved for {holder_id}")
        self.name = name
        self.holder_id = holder_id


class Registrar:
    """A thread-safe name → id map."""

    def __init__(self) -> None:
        self._by_name: dict[str, str] = {}
        self._by_id: dict[str, str] = {}
        self._mutex = threading.Lock()

    def reserve(self, name: str, holder_id: str) -> None:
        """Reserve `name` for `holder_id`; a repeat by the same holder is a no-op."""
        with self._mutex:
            current = self._by_name.get(name)
            if current is not None and current != holder_id:
                raise NameReservedError(name, current)
            old_name = self._by_id.get(holder_id)
            if old_name is not None and old_name != name:
                raise AlreadyExistsError(f"{holder_id} already holds name {old_name!r}")
            self._by_name[name] = holder_id
            self._by_id[holder_id] = name

    def release(self, name: str) -> None:
        """Free `name` (nothing happens if it is free)."""
        with self._mutex:
            holder_id = self._by_name.pop(name, None)
            if holder_id is not None:
                self._by_id.pop(holder_id, None)

    def release_id(self, holder_id: str) -> None:
        """Free whatever name `holder_id` holds."""
        with self._mutex:
            name = self._by_id.pop(holder_id, None)
            if name is not None:
                self._by_name.pop(name, None)

    def holder(self, name: str) -> str | None:
        """The id holding `name`, or None."""
        return self._by_name.get(name)

    def name_of(self, holder_id: str) -> str | None:
        """The name `holder_id` holds, or None."""
        return self._by_id.get(holder_id)
