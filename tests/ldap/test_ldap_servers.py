"""Failover order and skip memory (no server needed)."""

from __future__ import annotations

import pytest

from hub_ext.adapters.ldap.servers import ServerHealth, parse_server_url


def test_parse_server_urls() -> None:
    a = parse_server_url("ldaps://ldap-a.uni.example")
    assert (a.host, a.port, a.use_ssl) == ("ldap-a.uni.example", 636, True)
    b = parse_server_url("ldap://10.0.0.2:3389")
    assert (b.host, b.port, b.use_ssl) == ("10.0.0.2", 3389, False)
    with pytest.raises(ValueError, match="use ldap://HOST:PORT"):
        parse_server_url("https://ldap.uni.example")


def test_dead_server_is_skipped_then_retried() -> None:
    now = [0.0]
    a, b = parse_server_url("ldap://a"), parse_server_url("ldap://b")
    health = ServerHealth([a, b], skip_seconds=60, clock=lambda: now[0])
    assert health.order() == [a, b]
    health.mark_down(a)
    assert health.order() == [b, a] and health.is_skipped(a)
    now[0] = 59.0
    health.mark_down(b)  # both down: both still offered, the one back soonest first
    assert health.order() == [a, b]
    now[0] = 61.0
    assert health.order() == [a, b] and not health.is_skipped(a)
    health.mark_up(b)
    assert not health.is_skipped(b)
