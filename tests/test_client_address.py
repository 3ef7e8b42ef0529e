"""The client address that per-address limits count: peer, X-Forwarded-For, trusted proxies."""

from __future__ import annotations

import pytest

from gateway.client_address import UNKNOWN, client_address, parse_address, trusted_networks

PROXIES = trusted_networks(["10.0.0.0/8", "127.0.0.1/32", "2001:db8:ffff::/48"])


def test_an_untrusted_peer_counts_whatever_header_it_sends() -> None:
    """A forged X-Forwarded-For from a peer that is not a trusted proxy changes nothing."""
    assert client_address("203.0.113.7", ["1.1.1.1"], PROXIES) == "203.0.113.7"
    assert client_address("203.0.113.7", [], PROXIES) == "203.0.113.7"
    assert client_address("203.0.113.7", ["10.0.0.1"], ()) == "203.0.113.7"


def test_a_trusted_peer_hands_over_the_rightmost_untrusted_entry() -> None:
    """Behind one proxy, the entry it appended counts; the client's own entries do not."""
    assert client_address("10.0.0.2", ["198.51.100.4"], PROXIES) == "198.51.100.4"
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the real address.
    assert client_address("10.0.0.2", ["1.2.3.4, 198.51.100.4"], PROXIES) == "198.51.100.4"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    """Trusted hops are skipped; several header lines read as one list in order."""
    chain = ["6.6.6.6, 198.51.100.4", "10.1.1.1", "127.0.0.1"]
    assert client_address("10.0.0.2", chain, PROXIES) == "198.51.100.4"


def test_every_entry_trusted_counts_the_leftmost() -> None:
    """A request from inside the trusted network counts as the innermost address seen."""
    assert client_address("10.0.0.2", ["10.9.9.9, 10.0.0.3"], PROXIES) == "10.9.9.9"
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["unknown"], "10.0.0.2"),
        (["garbage, 10.0.0.5"], "10.0.0.5"),
        (["198.51.100.4, _hidden"], "10.0.0.2"),
        ([" , ,"], "10.0.0.2"),
        (["[2001:db8::1"], "10.0.0.2"),
        (["999.1.1.1"], "10.0.0.2"),
        (["1.2.3.4, not an address, 10.0.0.7"], "10.0.0.7"),
    ],
)
def test_a_malformed_entry_ends_the_walk_at_the_trusted_hop(header, expected) -> None:
    """Garbage is never an address: the trusted hop that handed it over counts."""
    assert client_address("10.0.0.2", header, PROXIES) == expected


def test_ipv6_peers_entries_and_ports() -> None:
    """IPv6 in canonical form; ports and brackets are dropped; mapped IPv4 is IPv4."""
    assert client_address("2001:DB8:0:0::9", [], PROXIES) == "2001:db8::9"
    assert client_address("2001:db8:ffff::1", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::1"
    assert client_address("::ffff:10.0.0.2", ["198.51.100.4:5678"], PROXIES) == "198.51.100.4"
    assert client_address("::ffff:203.0.113.9", ["1.1.1.1"], PROXIES) == "203.0.113.9"
    assert client_address("fe80::1%eth0", [], ()) == "fe80::1"


def test_no_peer_address_counts_as_one_unknown_client() -> None:
    """A transport without a peer name (tests, odd sockets) never reads the header."""
    assert client_address(None, ["1.2.3.4"], PROXIES) == UNKNOWN
    assert client_address("", ["1.2.3.4"], PROXIES) == UNKNOWN


def test_parse_address_reads_what_proxies_write() -> None:
    """Plain, with port, bracketed; None for anything else."""
    assert str(parse_address(" 1.2.3.4 ")) == "1.2.3.4"
    assert str(parse_address("1.2.3.4:80")) == "1.2.3.4"
    assert str(parse_address("[::1]:80")) == "::1"
    assert str(parse_address("::1")) == "::1"
    assert parse_address("example.com") is None
    assert parse_address("1.2.3.4:80:90") is None
