"""ReadAhead: order, errors, no item held back from a waiting consumer, bounded and stoppable."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from migrator.tools.read_ahead import ReadAhead


def test_items_arrive_in_order_through_a_small_buffer() -> None:
    ahead = ReadAhead(iter(range(10_000)), limit=7)
    assert list(ahead) == list(range(10_000))
    ahead.close()


def test_a_producer_error_comes_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("unreadable Table_map header")

    got: list[int] = []
    with pytest.raises(ValueError, match="unreadable Table_map"):
        for item in ReadAhead(source()):
            got.append(item)
    assert got == [1, 2]


def test_an_item_reaches_a_waiting_consumer_while_the_producer_blocks() -> None:
    # The applier's input pauses whenever the tool has printed all it has: what was parsed until
    # then must be applied now, not when more comes.
    release = threading.Event()

    def source() -> Iterator[str]:
        yield "first"
        release.wait(30)
        yield "second"

    ahead = ReadAhead(source())
    received: list[str] = []
    arrived = threading.Event()

    def consume() -> None:
        for item in ahead:
            received.append(item)
            arrived.set()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert arrived.wait(10), "the first item was held back while the producer was blocked"
    assert received == ["first"]
    release.set()
    consumer.join(10)
    assert received == ["first", "second"]


def test_close_stops_a_producer_that_is_ahead_by_its_limit() -> None:
    taken: list[int] = []

    def source() -> Iterator[int]:
        for i in range(1_000_000):
            taken.append(i)
            yield i

    ahead = ReadAhead(source(), limit=10)
    iterator = iter(ahead)
    assert next(iterator) == 0
    ahead.close(timeout=10)
    assert not ahead._thread.is_alive()
    assert len(taken) < 100  # it stopped at the limit instead of reading the whole input
