"""Split a list of protobuf items into Stream* responses (KEP-5825, CRIListStreaming).

kubelet's gRPC client refuses messages over 16 MiB (cri-client maxMsgSize), which is why
the Stream* RPCs exist. Each response holds at least one item and at most
`MAX_CHUNK_BYTES` of them (one item larger than that goes alone); every item appears in
exactly one response, in list order, and the stream ends after the last (EOF). No items:
no response at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from google.protobuf.message import Message

# An eighth of kubelet's cap, and half of gRPC's default 4 MiB receive limit, so that
# clients which never raised theirs (scripts, other tools) read the chunks too.
MAX_CHUNK_BYTES = 2 * 1024 * 1024
# Tag byte + length varint of a repeated message field, at most.
_FIELD_OVERHEAD_BYTES = 6

M = TypeVar("M", bound=Message)


def chunked(items: Iterable[M], max_bytes: int = MAX_CHUNK_BYTES) -> Iterator[list[M]]:
    """Consecutive runs of `items` whose encoded size stays within `max_bytes`."""
    batch: list[M] = []
    size = 0
    for item in items:
        item_bytes = item.ByteSize() + _FIELD_OVERHEAD_BYTES
        if batch and size + item_bytes > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_bytes
    if batch:
        yield batch
