"""The client address that per-address limits count (contract section 12); pure.

The socket's peer counts, unless the peer is one of ``server.trusted_proxies``. Then
``X-Forwarded-For`` is read from the right: each proxy appends the address it saw, so the
entries to the right were written by our own proxies and the first one (from the right) that
is not a trusted proxy is the client. Everything to its left was written by the client, or by
hops we do not trust, and is ignored: a forged header changes nothing, and a header from a
peer that is not trusted is not read at all.

An entry that is not an address (``unknown``, garbage, an obfuscated ``_hidden`` name) ends
the walk: the address counted is the trusted hop that handed it over, i.e. the entry to its
right (or the peer). Entries may carry a port (``1.2.3.4:5678``, ``[2001:db8::1]:443``);
IPv4-mapped IPv6 addresses count as their IPv4 address. The result is the address in its
canonical text form (``2001:db8::1``, not ``2001:0DB8:0:0::1``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"  # no peer address at all (a test transport): all such clients count as one


def request_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: tuple[str, ...]
) -> str:
    """:func:`client_address` with ``server.trusted_proxies`` as configured (parsed once)."""
    return client_address(peer, forwarded_for, _networks(trusted_proxies))


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return trusted_networks(cidrs)


def trusted_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """``server.trusted_proxies`` parsed (the config has checked each entry already)."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The address that counts for a request from ``peer`` carrying these ``X-Forwarded-For``
    header values (every occurrence, in order; each may hold a comma-separated list)."""
    hop = parse_address(peer) if peer else None
    if hop is None:
        return peer.strip() if peer and peer.strip() else UNKNOWN
    if not _is_trusted(hop, trusted):
        return str(hop)
    entries = [e for value in forwarded_for for e in value.split(",")]
    for entry in reversed(entries):
        if not entry.strip():
            continue
        address = parse_address(entry)
        if address is None:
            break  # written by the client: the trusted hop on its right is all we know
        hop = address
        if not _is_trusted(hop, trusted):
            break
    return str(hop)


def parse_address(text: str) -> Address | None:
    """An address from a peer name or an ``X-Forwarded-For`` entry, with or without a port."""
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
