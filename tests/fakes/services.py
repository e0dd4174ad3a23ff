"""A service supervisor that supervises nothing: for engine tests with fake steps."""

from __future__ import annotations


class NoServices:
    def __init__(self) -> None:
        self.checks = 0
        self.resumed = 0

    def resume(self) -> None:
        self.resumed += 1

    def check(self) -> None:
        self.checks += 1

    def shutdown(self) -> None:
        pass
