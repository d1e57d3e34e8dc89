"""SpdyConnection, both ends in memory: a client and a server of our own talk to each other."""

from __future__ import annotations

import pathlib

import pytest

from cri.streaming import spdy

DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "data" / "streaming"


class Pair:
    """A client and a server connection wired back to back (h11's ConnectionPair idea)."""

    def __init__(self) -> None:
        self.client = spdy.SpdyConnection(spdy.Role.CLIENT)
        self.server = spdy.SpdyConnection(spdy.Role.SERVER)

    def to_server(self) -> list[spdy.Event]:
        return self.server.receive_data(self.client.data_to_send())

    def to_client(self) -> list[spdy.Event]:
        return self.client.receive_data(self.server.data_to_send())


def open_replied(pair: Pair, kind: str = "stdout") -> int:
    stream_id = pair.client.open_stream({"streamtype": kind})
    assert pair.to_server() == [spdy.StreamOpened(stream_id, {"streamtype": kind})]
    pair.server.send_reply(stream_id)
    assert pair.to_client() == [spdy.StreamReplied(stream_id, {})]
    return stream_id


def test_streams_ids_are_odd_from_clients_and_increase() -> None:
    pair = Pair()
    ids = [pair.client.open_stream({"streamtype": k}) for k in ("error", "stdin", "stdout")]
    assert ids == [1, 3, 5]
    events = pair.to_server()
    assert [e.stream_id for e in events if isinstance(e, spdy.StreamOpened)] == [1, 3, 5]


def test_data_both_ways_and_half_close_to_closed() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.client.send_data(sid, b"to server")
    pair.client.end_stream(sid)
    assert pair.to_server() == [spdy.DataReceived(sid, b"to server"), spdy.StreamEnded(sid)]
    assert pair.server.stream_state(sid) is spdy.StreamState.HALF_CLOSED_REMOTE
    assert pair.client.stream_state(sid) is spdy.StreamState.HALF_CLOSED_LOCAL
    pair.server.send_data(sid, b"to client", fin=True)
    assert pair.to_client() == [spdy.DataReceived(sid, b"to client"), spdy.StreamEnded(sid)]
    assert pair.server.stream_state(sid) is spdy.StreamState.CLOSED
    assert pair.client.stream_state(sid) is spdy.StreamState.CLOSED
    assert pair.client.open_stream_count == pair.server.open_stream_count == 0


def test_server_must_reply_before_sending() -> None:
    pair = Pair()
    sid = pair.client.open_stream({"streamtype": "stdout"})
    pair.to_server()
    with pytest.raises(spdy.LocalProtocolError, match="SYN_REPLY first"):
        pair.server.send_data(sid, b"early")
    pair.server.send_reply(sid)
    with pytest.raises(spdy.LocalProtocolError, match="not expected"):
        pair.server.send_reply(sid)


def test_sending_after_fin_is_a_local_error() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.server.end_stream(sid)
    with pytest.raises(spdy.LocalProtocolError, match="cannot send"):
        pair.server.send_data(sid, b"late")


def test_reset_closes_both_ends() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.client.reset_stream(sid, spdy.RstStatus.CANCEL)
    assert pair.to_server() == [spdy.StreamReset(sid, spdy.RstStatus.CANCEL, remote=True)]
    assert pair.server.stream_state(sid) is spdy.StreamState.CLOSED
    # Frames still in flight for a stream closed here are dropped quietly.
    pair.server.reset_stream(sid)  # already closed: nothing sent
    assert pair.server.data_to_send() == b""


def test_data_after_the_peers_fin_is_answered_with_stream_already_closed() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.client.end_stream(sid)
    pair.to_server()
    late = spdy.encode_frame(spdy.Data(sid, b"late"), spdy.HeaderCompressor())
    events = pair.server.receive_data(late)
    assert events == [spdy.StreamReset(sid, spdy.RstStatus.STREAM_ALREADY_CLOSED, remote=False)]
    assert list(spdy.frames_of(pair.server.data_to_send())) == [
        spdy.RstStream(sid, spdy.RstStatus.STREAM_ALREADY_CLOSED)
    ]


def test_data_for_a_never_opened_stream_is_invalid_stream() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    events = server.receive_data(spdy.encode_frame(spdy.Data(9, b"x"), spdy.HeaderCompressor()))
    assert events == []
    assert list(spdy.frames_of(server.data_to_send())) == [
        spdy.RstStream(9, spdy.RstStatus.INVALID_STREAM)
    ]


def test_stream_ids_must_increase_and_have_the_clients_parity() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    compressor = spdy.HeaderCompressor()
    wire = b"".join(spdy.encode_frame(spdy.SynStream(sid, {}), compressor) for sid in (5, 3, 4, 7))
    events = server.receive_data(wire)
    assert [e.stream_id for e in events if isinstance(e, spdy.StreamOpened)] == [5, 7]
    assert list(spdy.frames_of(server.data_to_send())) == [
        spdy.RstStream(3, spdy.RstStatus.PROTOCOL_ERROR),
        spdy.RstStream(4, spdy.RstStatus.PROTOCOL_ERROR),
    ]


def test_pings_are_answered_and_acknowledged() -> None:
    pair = Pair()
    ping_id = pair.client.ping()
    assert ping_id == 1  # clients ping with odd ids
    assert pair.to_server() == [spdy.PingReceived(1)]
    assert pair.to_client() == [spdy.PingAcknowledged(1)]
    assert pair.server.ping() == 2  # servers with even ones
    assert pair.to_client() == [spdy.PingReceived(2)]
    assert pair.to_server() == [spdy.PingAcknowledged(2)]
    # An echo of a ping we never sent is ignored.
    assert pair.client.receive_data(spdy.encode_frame(spdy.Ping(99), spdy.HeaderCompressor())) == []


def test_go_away_reports_the_last_stream_and_refuses_new_ones() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.server.go_away()
    assert pair.to_client() == [spdy.GoAwayReceived(sid, spdy.GoAwayStatus.OK)]
    with pytest.raises(spdy.LocalProtocolError, match="going away"):
        pair.client.open_stream({})
    # Streams already accepted carry on.
    pair.server.send_data(sid, b"after goaway", fin=True)
    assert pair.to_client() == [spdy.DataReceived(sid, b"after goaway"), spdy.StreamEnded(sid)]


def test_streams_opened_after_our_go_away_are_refused() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    server.go_away()
    server.data_to_send()
    assert (
        server.receive_data(spdy.encode_frame(spdy.SynStream(1, {}), spdy.HeaderCompressor())) == []
    )
    assert list(spdy.frames_of(server.data_to_send())) == [
        spdy.RstStream(1, spdy.RstStatus.REFUSED_STREAM)
    ]


def test_go_away_refuses_our_streams_above_the_last_good_one() -> None:
    pair = Pair()
    first = open_replied(pair)
    second = pair.client.open_stream({"streamtype": "late"})  # in flight when GOAWAY leaves
    pair.server.go_away()
    assert pair.to_client() == [
        spdy.StreamReset(second, spdy.RstStatus.REFUSED_STREAM, remote=True),
        spdy.GoAwayReceived(first, spdy.GoAwayStatus.OK),
    ]


def test_concurrent_stream_cap() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER, max_concurrent_streams=2)
    compressor = spdy.HeaderCompressor()
    wire = b"".join(spdy.encode_frame(spdy.SynStream(s, {}), compressor) for s in (1, 3, 5))
    events = server.receive_data(wire)
    assert len([e for e in events if isinstance(e, spdy.StreamOpened)]) == 2
    assert list(spdy.frames_of(server.data_to_send())) == [
        spdy.RstStream(5, spdy.RstStatus.REFUSED_STREAM)
    ]


def test_protocol_errors_send_go_away_with_their_code() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    with pytest.raises(spdy.ProtocolError) as caught:
        server.receive_data(b"\x00\x00\x00\x00\x00\x00\x00\x01x")  # data on stream 0
    assert caught.value.code is spdy.GoAwayStatus.PROTOCOL_ERROR
    assert list(spdy.frames_of(server.data_to_send())) == [
        spdy.GoAway(0, spdy.GoAwayStatus.PROTOCOL_ERROR)
    ]
    assert server.closed
    assert server.receive_data(b"more") == []


def test_unidirectional_streams_need_no_reply() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    wire = spdy.encode_frame(spdy.SynStream(1, {}, unidirectional=True), spdy.HeaderCompressor())
    server.receive_data(wire)
    assert server.stream_state(1) is spdy.StreamState.HALF_CLOSED_LOCAL


def test_crictl_exec_capture_against_our_server() -> None:
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    events = server.receive_data((DATA_DIR / "crictl-exec-spdy.c2s").read_bytes())
    opened = {
        e.stream_id: e.headers["streamtype"] for e in events if isinstance(e, spdy.StreamOpened)
    }
    assert opened == {1: "error", 3: "stdin", 5: "stdout", 7: "stderr"}
    assert spdy.DataReceived(3, b"hello\n") in events
    assert events[-1] == spdy.StreamEnded(3)


# --- flow control -----------------------------------------------------------------------------


def test_windows_are_unlimited_for_a_peer_that_never_sends_window_update() -> None:
    # moby/spdystream never sends WINDOW_UPDATE: a server waiting for credit would stall
    # after 64 KiB. We send 1 MiB in one go without any credit from the client.
    server = spdy.SpdyConnection(spdy.Role.SERVER)
    server.receive_data(spdy.encode_frame(spdy.SynStream(1, {}), spdy.HeaderCompressor()))
    server.send_reply(1)
    assert server.send_window(1) is None
    server.send_data(1, b"x" * (1 << 20))
    data_bytes = sum(
        len(f.data) for f in spdy.frames_of(server.data_to_send()) if isinstance(f, spdy.Data)
    )
    assert data_bytes == 1 << 20


def test_windows_are_enforced_once_the_peer_grants_credit() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.server.send_data(sid, b"x" * 40_000)
    pair.to_client()
    # The client consumes: past half a window it grants credit, stream and session.
    pair.client.acknowledge_received_data(sid, 40_000)
    assert pair.to_server() == [spdy.WindowUpdated(sid, 40_000), spdy.WindowUpdated(0, 40_000)]
    assert pair.server.peer_uses_flow_control
    assert pair.server.send_window(sid) == 65536
    with pytest.raises(spdy.LocalProtocolError, match="exceed the send window"):
        pair.server.send_data(sid, b"y" * 65537)
    pair.server.send_data(sid, b"y" * 65536)
    assert pair.server.send_window(sid) == 0


def test_no_window_update_below_half_a_window() -> None:
    pair = Pair()
    sid = open_replied(pair)
    pair.server.send_data(sid, b"x" * 1000)
    pair.to_client()
    pair.client.acknowledge_received_data(sid, 1000)
    assert pair.client.data_to_send() == b""


def test_overrunning_our_window_is_tolerated() -> None:
    # spdystream ignores our windows too; receiving more than 64 KiB is not an error.
    pair = Pair()
    sid = open_replied(pair)
    pair.client.send_data(sid, b"z" * 300_000)
    events = pair.to_server()
    assert sum(len(e.data) for e in events if isinstance(e, spdy.DataReceived)) == 300_000
    assert pair.server.data_to_send() == b""


def test_initial_window_setting_adjusts_open_streams() -> None:
    pair = Pair()
    sid = open_replied(pair)
    # Switch the server to honouring windows, then shrink the initial window by 60000.
    pair.client.acknowledge_received_data(sid, 40_000)
    pair.to_server()
    settings = spdy.Settings({spdy.SettingId.INITIAL_WINDOW_SIZE: 5536})
    pair.server.receive_data(spdy.encode_frame(settings, spdy.HeaderCompressor()))
    assert pair.server.send_window(sid) == 5536 + 40_000


def test_window_update_overflow_resets_the_stream() -> None:
    pair = Pair()
    sid = open_replied(pair)
    update = spdy.encode_frame(spdy.WindowUpdate(sid, 2**31 - 1), spdy.HeaderCompressor())
    events = pair.server.receive_data(update)
    assert events == [spdy.StreamReset(sid, spdy.RstStatus.FLOW_CONTROL_ERROR, remote=False)]
