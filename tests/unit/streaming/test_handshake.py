"""Upgrade negotiation: X-Stream-Protocol-Version (SPDY) and Sec-WebSocket-Protocol."""

from __future__ import annotations

import pytest

from cri.streaming.handshake import (
    HandshakeRejected,
    is_websocket_request,
    negotiate,
    negotiate_spdy,
    negotiate_websocket,
)

SERVER = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
UPGRADE = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]


def versions(*values: str) -> list[tuple[str, str]]:
    return [*UPGRADE, *(("x-stream-protocol-version", v) for v in values)]


def test_client_order_wins() -> None:
    assert negotiate(["b", "a"], ["a", "b"]) == "b"
    assert negotiate(["x", "a"], ["a", "b"]) == "a"
    assert negotiate(["x"], ["a"]) is None


def test_client_go_offers_one_header_line_per_protocol() -> None:
    offered = versions(
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v3.channel.k8s.io",
        "v2.channel.k8s.io",
        "channel.k8s.io",
    )
    assert negotiate_spdy(offered, SERVER) == "v4.channel.k8s.io"


def test_comma_separated_values_and_client_preference() -> None:
    assert negotiate_spdy(versions("v2.channel.k8s.io, v4.channel.k8s.io"), SERVER) == (
        "v2.channel.k8s.io"
    )
    assert negotiate_spdy(versions("channel.k8s.io", "v3.channel.k8s.io"), SERVER) == (
        "channel.k8s.io"
    )


def test_missing_version_header_is_400() -> None:
    with pytest.raises(HandshakeRejected) as caught:
        negotiate_spdy(UPGRADE, SERVER)
    assert caught.value.status == 400
    with pytest.raises(HandshakeRejected) as caught:
        negotiate_spdy(versions(" , "), SERVER)
    assert caught.value.status == 400


def test_no_common_protocol_is_403_listing_ours() -> None:
    with pytest.raises(HandshakeRejected) as caught:
        negotiate_spdy(versions("v9.channel.k8s.io"), SERVER)
    assert caught.value.status == 403
    assert [v for k, v in caught.value.headers] == list(SERVER)
    assert {k for k, v in caught.value.headers} == {"X-Accepted-Stream-Protocol-Versions"}


@pytest.mark.parametrize(
    "upgrade",
    [
        [("upgrade", "SPDY/3.1")],  # no Connection: Upgrade
        [("connection", "Upgrade")],  # no Upgrade
        [("connection", "keep-alive"), ("upgrade", "SPDY/3.1")],
        [("connection", "Upgrade"), ("upgrade", "h2c")],
    ],
)
def test_missing_upgrade_headers_are_400(upgrade: list[tuple[str, str]]) -> None:
    headers = [*upgrade, ("x-stream-protocol-version", "v4.channel.k8s.io")]
    with pytest.raises(HandshakeRejected) as caught:
        negotiate_spdy(headers, SERVER)
    assert caught.value.status == 400


def test_websocket_detection() -> None:
    assert is_websocket_request([("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")])
    assert not is_websocket_request(UPGRADE)
    assert not is_websocket_request([("upgrade", "websocket")])


def test_websocket_subprotocols() -> None:
    server = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io", ""]
    offered = [("sec-websocket-protocol", "v4.channel.k8s.io, v5.channel.k8s.io")]
    assert negotiate_websocket(offered, server) == "v4.channel.k8s.io"
    assert negotiate_websocket([], server) == ""  # no header: the unnamed protocol
    with pytest.raises(HandshakeRejected) as caught:
        negotiate_websocket([("sec-websocket-protocol", "v9.channel.k8s.io")], server)
    assert caught.value.status == 403
