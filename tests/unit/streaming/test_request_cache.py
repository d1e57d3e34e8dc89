"""Single-use streaming tokens: random, one minute, at most 1000 outstanding."""

from __future__ import annotations

import re

import pytest

from cri.streaming.errors import TooManyStreamingRequestsError
from cri.streaming.request_cache import RequestCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_eight_url_safe_characters_and_distinct() -> None:
    cache: RequestCache[int] = RequestCache(Clock())
    tokens = {cache.insert(i) for i in range(500)}
    assert len(tokens) == 500
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8}", token) for token in tokens)


def test_a_token_is_used_once() -> None:
    cache: RequestCache[str] = RequestCache(Clock())
    token = cache.insert("exec")
    assert cache.consume(token) == "exec"
    assert cache.consume(token) is None
    assert cache.consume("unknown1") is None


def test_tokens_expire_after_a_minute() -> None:
    clock = Clock()
    cache: RequestCache[str] = RequestCache(clock)
    token = cache.insert("exec")
    clock.now += 60.0
    fresh = cache.insert("attach")
    assert cache.consume(token) == "exec"  # exactly at the deadline it still counts
    clock.now += 0.001
    assert cache.consume(fresh) == "attach"
    expired = cache.insert("late")
    clock.now += 60.5
    assert cache.consume(expired) is None
    assert len(cache) == 0  # consuming removes even an expired entry


def test_at_most_1000_outstanding_then_expired_ones_make_room() -> None:
    clock = Clock()
    cache: RequestCache[int] = RequestCache(clock)
    for i in range(1000):
        cache.insert(i)
    with pytest.raises(TooManyStreamingRequestsError, match="1000"):
        cache.insert(1000)
    clock.now += 61
    cache.insert(1001)  # the old ones were collected
    assert len(cache) == 1


def test_consumed_tokens_free_their_slot() -> None:
    cache: RequestCache[int] = RequestCache(Clock(), max_in_flight=2)
    first = cache.insert(1)
    cache.insert(2)
    with pytest.raises(TooManyStreamingRequestsError):
        cache.insert(3)
    cache.consume(first)
    cache.insert(3)
