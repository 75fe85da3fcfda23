"""The client address behind trusted proxies (X-Forwarded-For walked from the hub's peer)."""

from __future__ import annotations

import pytest

from hub_ext.core.login.forwarding import LOOPBACK, TrustedProxies, client_address, parse_address

PROXY = TrustedProxies.parse(["127.0.0.1/32", "10.42.0.0/16"])

CASES = [
    # peer, X-Forwarded-For headers, client
    ("192.0.2.7", [], "192.0.2.7"),
    ("192.0.2.7", ["203.0.113.9"], "192.0.2.7"),  # an untrusted peer's header is ignored
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["192.0.2.7"], "192.0.2.7"),  # the proxy appended its peer
    ("127.0.0.1", ["203.0.113.9, 192.0.2.7"], "192.0.2.7"),  # forged entry on the left
    ("127.0.0.1", ["203.0.113.9", "192.0.2.7"], "192.0.2.7"),  # two header lines
    ("127.0.0.1", ["203.0.113.9, 192.0.2.7, 10.42.3.4"], "192.0.2.7"),  # ingress + chp
    ("127.0.0.1", ["10.42.0.9, 10.42.3.4"], "10.42.0.9"),  # all trusted: the leftmost
    ("127.0.0.1", ["garbage, 10.42.3.4"], "10.42.3.4"),  # stop at the last trusted hop
    ("127.0.0.1", ["::ffff:192.0.2.8"], "192.0.2.8"),
    ("::ffff:127.0.0.1", ["192.0.2.8"], "192.0.2.8"),
    ("127.0.0.1", ["[2001:db8::1]"], "2001:db8::1"),
    ("127.0.0.2", ["192.0.2.7"], "127.0.0.2"),  # only 127.0.0.1 is the proxy here
]


@pytest.mark.parametrize(("peer", "xff", "client"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_client_is_the_hop_nearest_the_trusted_proxies(
    peer: str, xff: list[str], client: str
) -> None:
    assert client_address(peer, xff, PROXY) == client


def test_default_trusts_loopback_only() -> None:
    trusted = TrustedProxies.parse(LOOPBACK)
    assert client_address("::1", ["192.0.2.1"], trusted) == "192.0.2.1"
    assert client_address("10.0.0.5", ["192.0.2.1"], trusted) == "10.0.0.5"


def test_bad_network_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'10.0.0.0/33' is not an IP address or network"):
        TrustedProxies.parse(["10.0.0.0/33"])


def test_parse_address() -> None:
    assert parse_address("fe80::1%eth0") is not None
    assert parse_address("not-an-ip") is None
