"""Iterate a producer in a background thread, ahead of the consumer.

The applier parses the binlog tool's output (Python CPU) and then waits for the target to run what
it sent (a socket wait, which releases the GIL). Parsing the next transactions during that wait
overlaps the two instead of alternating them (1.2-1.35x the applier's throughput in A/B runs).
The consumer takes everything produced so far at once: a lock is taken per item, a wake-up only per
batch, and an item waits at most ``max_delay`` for a waiting consumer when no batch fills.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """``for item in ReadAhead(source): ...``; ``close()`` stops the thread.

    A producer exception is raised in the consumer after the items produced before it. ``close()``
    cannot interrupt a producer blocked inside ``next()``: that ends when its input does (the
    applier kills the tool first, which ends its pipe). It stops the producer from taking more.
    """

    def __init__(
        self, source: Iterable[T], *, limit: int = 4096, batch: int = 64, max_delay: float = 0.005,
        weight: Callable[[T], int] | None = None, max_bytes: int | None = None,
    ) -> None:
        self._source = source
        self._limit = limit  # items held at most: memory stays bounded when the consumer is slow
        # ... and their bytes (by ``weight``): 4,096 units of a few MB each would be GBs. One item is always
        # taken, whatever its weight, so a single large one cannot stall the pipe.
        self._weight = weight
        self._max_bytes = max_bytes
        self._bytes = 0
        self._batch = batch  # a waiting consumer is woken for this many items (a wake-up costs GIL handovers)
        self._max_delay = max_delay  # ... or finds fewer after this long (the producer may be blocked on input)
        self._items: list[T] = []
        self._done = False
        self._error: BaseException | None = None
        self._stopped = False
        self._consumer_waits = False
        self._producer_waits = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        cond = self._cond
        try:
            for item in self._source:
                size = self._weight(item) if self._weight is not None else 0
                with cond:
                    while (len(self._items) >= self._limit or self._over_bytes(size)) and not self._stopped:
                        self._producer_waits = True
                        cond.notify()  # the consumer may be waiting for a batch larger than the limit
                        cond.wait()
                        self._producer_waits = False
                    if self._stopped:
                        return
                    self._items.append(item)
                    self._bytes += size
                    if self._consumer_waits and len(self._items) >= self._batch:
                        cond.notify()
        except BaseException as exc:  # raised in the consumer
            with cond:
                self._error = exc
        with cond:
            self._done = True
            cond.notify()

    def _over_bytes(self, size: int) -> bool:
        return self._max_bytes is not None and bool(self._items) and self._bytes + size > self._max_bytes

    def __iter__(self) -> Iterator[T]:
        cond = self._cond
        while True:
            with cond:
                while not self._items and not self._done:
                    self._consumer_waits = True
                    cond.wait(self._max_delay)
                    self._consumer_waits = False
                items, self._items = self._items, []
                self._bytes = 0
                done, error = self._done, self._error
                if self._producer_waits:
                    cond.notify()
            yield from items
            if done and not items:
                if error is not None:
                    raise error
                return

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)
