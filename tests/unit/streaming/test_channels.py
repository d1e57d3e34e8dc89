"""Kubernetes WebSocket channel framing: binary, base64, and the v5 CLOSE signal."""

from __future__ import annotations

import pytest

from cri.streaming.channels import (
    PORTFORWARD_PROTOCOLS,
    REMOTECOMMAND_PROTOCOLS,
    ChannelClose,
    ChannelData,
    ChannelProtocolError,
    decode_message,
    encode_close,
    encode_message,
)

V5 = REMOTECOMMAND_PROTOCOLS["v5.channel.k8s.io"]
V4 = REMOTECOMMAND_PROTOCOLS["v4.channel.k8s.io"]
V4_BASE64 = REMOTECOMMAND_PROTOCOLS["v4.base64.channel.k8s.io"]
BASE64 = REMOTECOMMAND_PROTOCOLS["base64.channel.k8s.io"]


def test_binary_messages_carry_the_channel_byte_first() -> None:
    assert encode_message(V4, 1, b"out") == b"\x01out"
    assert decode_message(V4, b"\x00foo\n") == ChannelData(0, b"foo\n")
    assert decode_message(V4, b"\x04") == ChannelData(4, b"")


def test_base64_messages_are_text_with_an_ascii_channel_digit() -> None:
    # wsstream's own example: "foo\n" on stdin is '0' + "Zm9vCg==".
    assert decode_message(BASE64, "0Zm9vCg==") == ChannelData(0, b"foo\n")
    assert encode_message(V4_BASE64, 1, b"\n") == "1Cg=="
    assert decode_message(V4_BASE64, b"3") == ChannelData(3, b"")


def test_bad_base64_is_a_protocol_error() -> None:
    with pytest.raises(ChannelProtocolError):
        decode_message(BASE64, "0!!!")


def test_empty_messages_are_ignored() -> None:
    assert decode_message(V5, b"") is None


def test_v5_close_signal() -> None:
    assert encode_close(0) == b"\xff\x00"
    assert decode_message(V5, b"\xff\x00") == ChannelClose(0)
    with pytest.raises(ChannelProtocolError, match="exactly one channel byte"):
        decode_message(V5, b"\xff\x00\x01")
    with pytest.raises(ChannelProtocolError):
        decode_message(V5, b"\xff")


def test_before_v5_255_is_just_a_channel_number() -> None:
    assert decode_message(V4, b"\xff\x00") == ChannelData(255, b"\x00")


def test_protocol_sets() -> None:
    assert set(REMOTECOMMAND_PROTOCOLS) == {
        "",
        "channel.k8s.io",
        "base64.channel.k8s.io",
        "v4.channel.k8s.io",
        "v4.base64.channel.k8s.io",
        "v5.channel.k8s.io",
    }
    assert set(PORTFORWARD_PROTOCOLS) == {"", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"}
    assert [p.name for p in REMOTECOMMAND_PROTOCOLS.values() if p.json_status] == [
        "v5.channel.k8s.io",
        "v4.channel.k8s.io",
        "v4.base64.channel.k8s.io",
    ]
