"""ReadAhead bounds the bytes it holds, not only the number of items (review B7)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from migrator.tools.read_ahead import ReadAhead


def test_the_producer_waits_once_the_held_bytes_reach_the_bound() -> None:
    produced: list[int] = []
    held_at_most = 0
    consumer_may_go = threading.Event()

    def source() -> Iterator[bytes]:
        for i in range(200):
            produced.append(i)
            yield bytes(1000)

    ahead = ReadAhead(source(), limit=4096, weight=len, max_bytes=10_000)
    got = 0
    for _item in ahead:
        if got == 0:
            consumer_may_go.wait(0.3)  # a slow consumer: the producer must stop at ~10 items, not 4,096
            held_at_most = len(produced) - 1
        got += 1
    ahead.close()
    assert got == 200
    # the first batch the consumer holds (<= 10 items) plus what the producer may queue meanwhile (10)
    assert held_at_most <= 21, held_at_most


def test_one_item_heavier_than_the_bound_still_passes() -> None:
    ahead = ReadAhead(iter([bytes(50), bytes(5000), bytes(50)]), weight=len, max_bytes=100)
    assert [len(x) for x in ahead] == [50, 5000, 50]
    ahead.close()
