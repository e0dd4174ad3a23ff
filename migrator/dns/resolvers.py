"""Confirm a DNS change the way clients will see it: ask the configured resolvers directly.

Route53's INSYNC means its own servers have the change; the resolvers the applications use may
still serve a cached answer. TTL 0 (step 1) keeps that short; this check proves it.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.query
import dns.rdatatype


def _address(resolver: str) -> tuple[str, int]:
    host, _, port = resolver.rpartition(":") if resolver.count(":") == 1 else (resolver, "", "53")
    return (host or resolver), int(port or 53)


def _normal(value: str) -> str:
    return value.rstrip(".").lower()


def answers(resolver: str, name: str, record_type: str, *, timeout: float = 2.0) -> set[str]:
    """The values one resolver returns for ``name`` (CNAME targets or addresses); empty on no answer."""
    host, port = _address(resolver)
    query = dns.message.make_query(name, dns.rdatatype.from_text(record_type))
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError):
        return set()
    values: set[str] = set()
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.from_text(record_type):
            values.update(_normal(rdata.to_text()) for rdata in rrset)
    return values


def disagreeing(
    resolvers: tuple[str, ...], name: str, record_type: str, expected: str
) -> dict[str, set[str]]:
    """Resolvers whose answer is not exactly ``expected``, with what they answered."""
    wrong: dict[str, set[str]] = {}
    for resolver in resolvers:
        got = answers(resolver, name, record_type)
        if got != {_normal(expected)}:
            wrong[resolver] = got
    return wrong
