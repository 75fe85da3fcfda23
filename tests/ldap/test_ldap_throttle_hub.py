"""The login throttle through the real stack: browser -> configurable-http-proxy -> JupyterHub
-> slapd.

The hub starts configurable-http-proxy itself and trusts only it (127.0.0.1). Each simulated
client connects from its own loopback address (127.0.0.x), which the proxy appends to
X-Forwarded-For, so the hub sees lab rooms, attackers and forged headers as it would behind a
real proxy.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap_helpers import hub_config_text
from ldap_hubproc import HubProcess, LoginReply, new_session, post_login

from hub_ext.adapters.ldap.reference_lab import Slapd, TlsFiles, lab_password

pytestmark = pytest.mark.slow

CHP = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "configurable-http-proxy"
INVALID = "Invalid username or password"
LOCKED = re.compile(r"too many attempts, try again in (\d+) s")
FORGED = ("203.0.113.9", "198.51.100.7")

PROXY_CONFIG = f"""
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.should_start = True
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.LabLDAPAuthenticator.trusted_proxies = ["127.0.0.1/32"]
"""


@pytest.fixture(scope="module")
def proxied_hub(
    tmp_path_factory: pytest.TempPathFactory, slapd: Slapd, ldap_tls: TlsFiles
) -> Iterator[HubProcess]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy missing at {CHP}; run npm ci")
    hub = HubProcess(
        tmp_path_factory.mktemp("proxied-hub"),
        hub_config_text([slapd.url], ldap_tls) + PROXY_CONFIG,
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


async def attempt(
    hub: HubProcess, source: str, user: str, password: str, forged: str | None = None
) -> LoginReply:
    """One login from loopback address ``source`` through the proxy, with forged
    X-Real-Ip and X-Forwarded-For headers when ``forged`` is given."""
    headers = {"X-Real-Ip": forged, "X-Forwarded-For": forged} if forged else {}
    async with new_session(source) as s:
        return await post_login(s, hub, user, password, base=hub.proxy_url, headers=headers)


def audit_lines(hub: HubProcess) -> list[str]:
    pattern = re.compile(r"login (ok|failed|refused)|lockout")
    return [line for line in hub.log_text().splitlines() if pattern.search(line)]


def wait_of(reply: LoginReply) -> int:
    m = LOCKED.fullmatch(reply.message)
    assert reply.status == 429 and m, (reply.status, reply.message)
    return int(m.group(1))


async def test_fifty_students_behind_one_address_each_failing_twice_all_get_in(
    proxied_hub: HubProcess,
) -> None:
    students = [f"student{i:02d}" for i in range(1, 51)]
    room = "127.0.0.5"
    gate = asyncio.Semaphore(10)

    async def one(user: str, password: str) -> LoginReply:
        async with gate:
            return await attempt(proxied_hub, room, user, password)

    # The worst case: the whole room mistypes twice before anyone gets in.
    for k in range(2):
        wrong = await asyncio.gather(*(one(u, f"{lab_password(u)}{k}x") for u in students))
        assert all((r.status, r.message) == (403, INVALID) for r in wrong)
    right = await asyncio.gather(*(one(u, lab_password(u)) for u in students))
    refused = [(u, r.status, r.message) for u, r in zip(students, right, strict=True) if not r.ok]
    assert refused == []
    assert not any(f"lockout address='{room}'" in line for line in audit_lines(proxied_hub))


async def test_forged_forwarding_headers_neither_bypass_nor_reach_the_audit_log(
    proxied_hub: HubProcess,
) -> None:
    # (Runs after the room test, which needs all 50 students unlocked.)
    # A name locked by five failures stays locked whatever address the client claims.
    for i in range(5):
        r = await attempt(proxied_hub, "127.0.0.2", "student10", "bad", FORGED[i % 2])
        assert (r.status, r.message) == (403, INVALID)
    for forged in (*FORGED, "10.9.9.9", None):
        r = await attempt(proxied_hub, "127.0.0.2", "student10", lab_password("student10"), forged)
        wait_of(r)
    # A spraying address stays locked whatever address it claims, on every attempt.
    for i in range(10):
        await attempt(proxied_hub, "127.0.0.3", f"student{11 + i}", "Spring2026!", f"10.8.0.{i}")
    r = await attempt(
        proxied_hub, "127.0.0.3", "student22", lab_password("student22"), "203.0.113.77"
    )
    wait_of(r)
    lines = audit_lines(proxied_hub)
    assert any("from=127.0.0.2" in line for line in lines)
    assert any("lockout address='127.0.0.3'" in line for line in lines)
    for line in lines:
        assert not re.search(r"203\.0\.113|198\.51\.100|10\.9\.9\.9|10\.8\.0\.", line), line


async def test_spraying_twenty_names_from_one_address_gets_it_locked(
    proxied_hub: HubProcess,
) -> None:
    attacker = "127.0.0.6"
    replies = [
        await attempt(proxied_hub, attacker, f"student{i:02d}", "Winter2026!")
        for i in range(31, 51)
    ]
    assert [r.status for r in replies[:10]] == [403] * 10
    assert all(r.status == 429 for r in replies[10:])
    # Locked: even a right password from there waits; another address is untouched.
    wait_of(await attempt(proxied_hub, attacker, "student30", lab_password("student30")))
    assert (await attempt(proxied_hub, "127.0.0.7", "student30", lab_password("student30"))).ok
    (line,) = [ln for ln in audit_lines(proxied_hub) if f"lockout address='{attacker}'" in ln]
    assert "10 different names failed with the same password within 300 s" in line
    assert "last attempt user='student40'" in line


async def test_a_locked_name_locks_no_other_name(proxied_hub: HubProcess) -> None:
    for _ in range(5):
        await attempt(proxied_hub, "127.0.0.8", "student25", "guess")
    wait_of(await attempt(proxied_hub, "127.0.0.8", "student25", lab_password("student25")))
    wait_of(await attempt(proxied_hub, "127.0.0.9", "student25", lab_password("student25")))
    for user in ("student26", "student27"):
        assert (await attempt(proxied_hub, "127.0.0.8", user, lab_password(user))).ok
    (line,) = [ln for ln in audit_lines(proxied_hub) if "lockout username='student25'" in ln]
    assert "5 failed logins within 300 s; last attempt from=127.0.0.8" in line


async def test_locks_survive_a_hub_restart(proxied_hub: HubProcess) -> None:
    for _ in range(5):
        await attempt(proxied_hub, "127.0.0.10", "student44", "guess")
    for i in range(10):
        await attempt(proxied_hub, "127.0.0.11", f"student0{i}", "Autumn2026!")
    before = wait_of(
        await attempt(proxied_hub, "127.0.0.12", "student44", lab_password("student44"))
    )
    wait_of(await attempt(proxied_hub, "127.0.0.11", "student45", lab_password("student45")))
    assert (proxied_hub.work / "labhub-login-locks.json").exists()

    proxied_hub.stop()
    proxied_hub.start()

    after = wait_of(
        await attempt(proxied_hub, "127.0.0.12", "student44", lab_password("student44"))
    )
    assert after <= before
    wait_of(await attempt(proxied_hub, "127.0.0.11", "student45", lab_password("student45")))
    assert (await attempt(proxied_hub, "127.0.0.12", "student45", lab_password("student45"))).ok
    log = proxied_hub.log_text()
    assert "lockout username='student44' kept from before the restart" in log
    assert "lockout address='127.0.0.11' kept from before the restart" in log
