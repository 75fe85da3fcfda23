"""Failover between two slapd servers, all servers down, and a server that never answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from ldap_helpers import LAB, HungServer, hub_config_text
from ldap_hubproc import HubProcess, new_session, post_login

from hub_ext.adapters.ldap.reference_lab import Slapd, TlsFiles, lab_password

pytestmark = pytest.mark.slow
CONNECT_TIMEOUT = 1.0
UNAVAILABLE = "login service unavailable, try again in a minute"


def start_hub(work: Path, urls: list[str], tls: TlsFiles, **extra: object) -> HubProcess:
    hub = HubProcess(
        work,
        hub_config_text(urls, tls, connect_timeout=CONNECT_TIMEOUT, receive_timeout=2.0, **extra),
    )
    hub.start()
    return hub


async def login(hub: HubProcess, uid: str) -> tuple[bool, str, float]:
    async with new_session() as s:
        reply = await post_login(s, hub, uid, lab_password(uid))
    return reply.ok, reply.message, reply.seconds


async def health_latency(hub: HubProcess, samples: int) -> list[float]:
    out = []
    async with new_session() as s:
        for _ in range(samples):
            t0 = time.perf_counter()
            async with s.get(f"{hub.url}/hub/health") as r:
                assert r.status == 200
            out.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
    return out


async def test_first_server_killed_during_a_burst(
    tmp_path: Path, slapd_pair: tuple[Slapd, Slapd], ldap_tls: TlsFiles
) -> None:
    room_a, room_b = slapd_pair
    hub = start_hub(tmp_path / "hub", [room_a.url, room_b.url], ldap_tls)
    try:
        students = [u for u in LAB.users if u.startswith("student")]

        async def staggered(i: int, uid: str) -> tuple[bool, str, float]:
            await asyncio.sleep(i * 0.04)
            return await login(hub, uid)

        burst = asyncio.gather(*(staggered(i, u) for i, u in enumerate(students)))
        # Kill room A once it has served a few logins, while most of the burst is to come.
        for _ in range(200):
            if hub.log_text().count(f"server={room_a.url}") >= 5:
                break
            await asyncio.sleep(0.02)
        room_a.kill()
        results = await burst
        failures = [(u, r) for u, r in zip(students, results, strict=True) if not r[0]]
        assert not failures, failures
        slowest = max(r[2] for r in results)
        print(f"slowest login during failover: {slowest:.3f} s")
        assert slowest < CONNECT_TIMEOUT + 1.0, slowest
        log = hub.log_text()
        assert f"LDAP server {room_a.url} failed" in log
        # The kill happened mid-burst: both rooms served some of the logins.
        assert log.count(f"server={room_a.url}") >= 5
        assert log.count(f"server={room_b.url}") >= 10

        # Both rooms down: the clear message, and the hub keeps serving.
        room_b.kill()
        ok, message, seconds = await login(hub, "lecturer1")
        assert (ok, message) == (False, UNAVAILABLE)
        assert seconds < 2 * CONNECT_TIMEOUT + 1.0
        assert max(await health_latency(hub, 3)) < 0.5
        assert "Traceback" not in hub.log_text()
    finally:
        hub.stop()


async def test_hung_server_does_not_block_the_hub(
    tmp_path: Path, hung_ldap: HungServer, ldap_tls: TlsFiles
) -> None:
    hub = start_hub(tmp_path / "hub", [hung_ldap.url], ldap_tls)
    try:
        await health_latency(hub, 1)  # warm up the connection path
        pending = asyncio.ensure_future(login(hub, "student07"))
        await asyncio.sleep(0.2)
        latencies = await health_latency(hub, 15)
        assert not pending.done(), "the login should still be waiting for the hung server"
        ok, message, seconds = await pending
        assert (ok, message) == (False, UNAVAILABLE)
        print(f"health latency max while a login waits: {max(latencies) * 1000:.1f} ms")
        assert max(latencies) < 0.1, latencies
        assert seconds < CONNECT_TIMEOUT + 2.0 + 1.5
    finally:
        hub.stop()
