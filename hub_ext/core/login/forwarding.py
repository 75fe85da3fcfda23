"""The client address of a request that passed through proxies (``X-Forwarded-For``).

Every proxy in front of the hub (an Ingress controller, configurable-http-proxy) appends the
address it received the request from to ``X-Forwarded-For``. Anything further left was written
by someone else, possibly the client itself. So the client is found by walking from the hub's
own TCP peer towards the left: while the current hop is a *trusted* proxy, the hop it names is
believed; the first hop that is not trusted is the client. ``X-Real-Ip`` and any header sent by
a peer that is not trusted are never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Trusted when nothing is configured: proxies on the hub's own machine or pod.
LOOPBACK = ("127.0.0.0/8", "::1/128")


def parse_address(text: str) -> Address | None:
    """An IP address (IPv4-mapped IPv6 as IPv4, brackets and zone dropped), or None."""
    text = text.strip().strip("[]").split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_network(text: str) -> Network:
    """``10.0.0.0/8``, ``192.0.2.7`` or ``fd00::/8``; ValueError with a clear message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or network: write it like 10.0.0.0/8, "
            "192.0.2.7 or fd00::/8"
        ) from None


@dataclass(frozen=True)
class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` entries are believed."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(tuple(parse_network(e) for e in entries))

    def trusts(self, addr: Address) -> bool:
        return any(addr.version == n.version and addr in n for n in self.networks)


def forwarded_hops(headers: Sequence[str]) -> list[str]:
    """The entries of every ``X-Forwarded-For`` header, in order (left to right)."""
    return [part.strip() for header in headers for part in header.split(",") if part.strip()]


def client_address(peer: str, forwarded_for: Sequence[str], trusted: TrustedProxies) -> str:
    """The address of the client: ``peer`` is the hub's TCP peer, ``forwarded_for`` the
    values of its ``X-Forwarded-For`` headers as received."""
    current = parse_address(peer)
    if current is None:
        return peer or "unknown"
    for hop in reversed(forwarded_hops(forwarded_for)):
        if not trusted.trusts(current):
            break
        named = parse_address(hop)
        if named is None:
            break  # a trusted proxy wrote something that is no address: stop at that proxy
        current = named
    return str(current)
