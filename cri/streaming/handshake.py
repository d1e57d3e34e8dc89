"""The HTTP/1.1 upgrade handshakes, as pure functions over request headers.

SPDY (k8s.io/streaming httpstream.Handshake, then spdy.UpgradeResponse):

    client                                          server
    POST /exec/<token>                              (GET works the same)
    Connection: Upgrade
    Upgrade: SPDY/3.1
    X-Stream-Protocol-Version: v5.channel.k8s.io    one header line per protocol,
    X-Stream-Protocol-Version: v4.channel.k8s.io    most preferred first; a line may
    ...                                             also hold a comma-separated list
                                       ──────────▶
                                                    no X-Stream-Protocol-Version: 400
                                                    no protocol in common: 403 with
                                                      X-Accepted-Stream-Protocol-Versions
                                                    Connection/Upgrade missing: 400
                                       ◀──────────  101 Switching Protocols
                                                    Connection: Upgrade
                                                    Upgrade: SPDY/3.1
                                                    X-Stream-Protocol-Version: <chosen>
    ... raw SPDY/3.1 frames both ways from here on ...

The chosen protocol is the first one in the CLIENT's order that the server supports.

WebSocket (RFC 6455, then k8s.io/streaming wsstream): `Upgrade: websocket`, the
subprotocol from Sec-WebSocket-Protocol, again chosen in the client's order; no header
at all means the unnamed protocol "".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

HEADER_PROTOCOL_VERSION = "x-stream-protocol-version"
HEADER_ACCEPTED_PROTOCOL_VERSIONS = "X-Accepted-Stream-Protocol-Versions"
SPDY_UPGRADE = "SPDY/3.1"

# (name in lower case, value) pairs, in the order the client sent them.
RequestHeaders = Sequence[tuple[str, str]]


@dataclasses.dataclass
class HandshakeRejected(Exception):
    """The upgrade is refused with HTTP `status`; `message` is the response body."""

    status: int
    message: str
    headers: Sequence[tuple[str, str]] = ()

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def header_values(headers: RequestHeaders, name: str) -> list[str]:
    """Every value of header `name` (lower case), one per header line."""
    return [value for key, value in headers if key == name]


def comma_separated(values: Iterable[str]) -> list[str]:
    """Split header lines on commas, trimming spaces and dropping empty items."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def negotiate(client_protocols: Sequence[str], server_protocols: Sequence[str]) -> str | None:
    """The first client protocol the server supports (the client's preference wins)."""
    supported = set(server_protocols)
    return next((p for p in client_protocols if p in supported), None)


def has_token(headers: RequestHeaders, name: str, token: str) -> bool:
    """Whether a comma-separated header lists `token` (case-insensitive)."""
    return token.lower() in (t.lower() for t in comma_separated(header_values(headers, name)))


def is_websocket_request(headers: RequestHeaders) -> bool:
    """`Upgrade: websocket` with `Connection: Upgrade` (wsstream.IsWebSocketRequest)."""
    upgrade = header_values(headers, "upgrade")
    return bool(upgrade) and upgrade[0].strip().lower() == "websocket" and is_upgrade(headers)


def is_upgrade(headers: RequestHeaders) -> bool:
    """Whether any Connection header mentions upgrade (httpstream.IsUpgradeRequest)."""
    return any("upgrade" in value.lower() for value in header_values(headers, "connection"))


def negotiate_spdy(headers: RequestHeaders, server_protocols: Sequence[str]) -> str:
    """Choose the SPDY subprotocol, or raise `HandshakeRejected` (400, 403)."""
    values = header_values(headers, HEADER_PROTOCOL_VERSION)
    if not values:
        raise HandshakeRejected(
            400,
            "unable to upgrade: header X-Stream-Protocol-Version does not exist in request",
        )
    client_protocols = comma_separated(values)
    if not client_protocols:
        raise HandshakeRejected(
            400,
            f"unable to upgrade: header X-Stream-Protocol-Version contains {values},"
            " but no valid protocols",
        )
    chosen = negotiate(client_protocols, server_protocols)
    if chosen is None:
        raise HandshakeRejected(
            403,
            "unable to upgrade: unable to negotiate protocol: client supports"
            f" {client_protocols}, server accepts {list(server_protocols)}",
            [(HEADER_ACCEPTED_PROTOCOL_VERSIONS, p) for p in server_protocols],
        )
    # spdy.UpgradeResponse: Connection must mention upgrade, Upgrade must name SPDY/3.1.
    upgrade = " ".join(header_values(headers, "upgrade")).lower()
    if not is_upgrade(headers) or SPDY_UPGRADE.lower() not in upgrade:
        raise HandshakeRejected(400, "unable to upgrade: missing upgrade headers in request")
    return chosen


def spdy_upgrade_response_headers(protocol: str) -> list[tuple[str, str]]:
    """The headers of the 101 that switches to SPDY/3.1 (client-go checks all three)."""
    return [
        ("Connection", "Upgrade"),
        ("Upgrade", SPDY_UPGRADE),
        ("X-Stream-Protocol-Version", protocol),
    ]


def negotiate_websocket(headers: RequestHeaders, server_protocols: Sequence[str]) -> str:
    """Choose the WebSocket subprotocol ("" when the client names none), or raise 403."""
    client_protocols = comma_separated(header_values(headers, "sec-websocket-protocol"))
    if not client_protocols:
        client_protocols = [""]
    chosen = negotiate(client_protocols, server_protocols)
    if chosen is None:
        raise HandshakeRejected(
            403,
            f"requested protocol(s) are not supported: {client_protocols};"
            f" supports {[p for p in server_protocols if p]}",
        )
    return chosen
