"""Kubernetes channel framing over WebSocket messages (k8s.io/streaming wsstream), pure.

Every message carries one channel's bytes:

    binary protocols ("", channel.k8s.io, v4.channel.k8s.io, v5.channel.k8s.io):
        binary message = [channel byte] + payload
    base64 protocols (base64.channel.k8s.io, v4.base64.channel.k8s.io):
        text message   = chr(ord('0') + channel) + base64(payload)
    v5.channel.k8s.io adds one control message, client to server:
        [255, channel] = CLOSE: the client half-closed `channel` (stdin EOF)

Remote command channels: 0 stdin, 1 stdout, 2 stderr, 3 error (status), 4 resize.
Port-forward channels: 2i data and 2i+1 error for the i-th requested port.
Messages for channels nobody reads are dropped; empty messages are ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum

CLOSE_SIGNAL = 255


class Channel(enum.IntEnum):
    """Remote command channels (their numbers match the POSIX stdio descriptors)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4


@dataclasses.dataclass(frozen=True)
class ChannelProtocol:
    """A WebSocket subprotocol of the channel family."""

    name: str
    base64: bool = False
    # v4 and later write a JSON metav1.Status on the error channel; older ones plain text.
    json_status: bool = False
    # v5: the client may half-close a channel with [255, channel].
    close_signal: bool = False


REMOTECOMMAND_PROTOCOLS = {
    p.name: p
    for p in (
        ChannelProtocol("v5.channel.k8s.io", json_status=True, close_signal=True),
        ChannelProtocol("v4.channel.k8s.io", json_status=True),
        ChannelProtocol("v4.base64.channel.k8s.io", base64=True, json_status=True),
        ChannelProtocol("channel.k8s.io"),
        ChannelProtocol("base64.channel.k8s.io", base64=True),
        ChannelProtocol(""),
    )
}
PORTFORWARD_PROTOCOLS = {
    p.name: p
    for p in (
        ChannelProtocol("v4.channel.k8s.io"),
        ChannelProtocol("v4.base64.channel.k8s.io", base64=True),
        ChannelProtocol(""),
    )
}


class ChannelProtocolError(Exception):
    """A message breaks the channel framing; the connection is closed (code 1002)."""


@dataclasses.dataclass(frozen=True)
class ChannelData:
    """Payload for one channel."""

    channel: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class ChannelClose:
    """The client half-closed `channel` (v5 CLOSE signal)."""

    channel: int


def decode_message(
    protocol: ChannelProtocol, message: bytes | str
) -> ChannelData | ChannelClose | None:
    """Decode one client message; None for an empty one."""
    raw = message.encode("latin-1") if isinstance(message, str) else message
    if not raw:
        return None
    if protocol.close_signal and raw[0] == CLOSE_SIGNAL:
        if len(raw) != 2:
            raise ChannelProtocolError(
                f"close signal must carry exactly one channel byte, got {len(raw) - 1}"
            )
        return ChannelClose(raw[1])
    if protocol.base64:
        channel = raw[0] - ord("0")
        try:
            data = base64.b64decode(raw[1:], validate=True)
        except binascii.Error as err:
            raise ChannelProtocolError(f"channel {channel}: bad base64 payload: {err}") from None
        return ChannelData(channel, data)
    return ChannelData(raw[0], raw[1:])


def encode_message(protocol: ChannelProtocol, channel: int, data: bytes) -> bytes | str:
    """One server message: bytes for binary protocols, str (a text message) for base64."""
    if protocol.base64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
    return bytes((channel,)) + data


def encode_close(channel: int) -> bytes:
    """The v5 CLOSE signal for `channel` (what a client sends to half-close stdin)."""
    return bytes((CLOSE_SIGNAL, channel))
