"""Resolver confirmation against a real UDP DNS responder on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rrset
import pytest

from migrator.dns.resolvers import answers, disagreeing


class TinyResolver:
    """Answers CNAME queries for one name from a dict the test changes, like a caching resolver would."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            name = query.question[0].name.to_text().rstrip(".")
            if name in self.records:
                response.answer.append(dns.rrset.from_text(name + ".", 0, "IN", "CNAME", self.records[name] + "."))
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def resolver() -> Iterator[TinyResolver]:
    server = TinyResolver()
    yield server
    server.close()


def test_confirms_only_when_every_resolver_answers_the_new_value(resolver: TinyResolver) -> None:
    second = TinyResolver()
    try:
        resolver.records["db.example.internal"] = "old-rds.amazonaws.com"
        second.records["db.example.internal"] = "old-rds.amazonaws.com"
        both = (resolver.address, second.address)
        assert answers(resolver.address, "db.example.internal", "CNAME") == {"old-rds.amazonaws.com"}
        wrong = disagreeing(both, "db.example.internal", "CNAME", "ec2-host.internal.")
        assert wrong == {r: {"old-rds.amazonaws.com"} for r in both}
        resolver.records["db.example.internal"] = "ec2-host.internal"
        assert disagreeing(both, "db.example.internal", "CNAME", "ec2-host.internal") == {
            second.address: {"old-rds.amazonaws.com"}
        }
        second.records["db.example.internal"] = "EC2-Host.internal"
        assert disagreeing(both, "db.example.internal", "CNAME", "ec2-host.internal.") == {}
    finally:
        second.close()


def test_an_unreachable_resolver_disagrees() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent = f"127.0.0.1:{s.getsockname()[1]}"  # bound, never answers
        assert disagreeing((silent,), "db.example.internal", "CNAME", "x") == {silent: set()}
