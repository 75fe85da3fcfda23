"""Benchmark: 50 concurrent logins through a real JupyterHub against a local slapd.

Prints the login time (HTTP POST /hub/login until the redirect) p50/p95/max, the hub's
event-loop lag p99/max measured inside the hub process while the logins run, and the time
the LDAP part alone takes (LabLDAPAuthenticator.authenticate in this process).
Targets: login p95 < 100 ms, hub event-loop lag p99 < 50 ms (LabLDAPAuthenticator, returning
students, all at once). ``--smoke`` runs one round of 5 logins.

The same rounds run against JupyterHub's dummy authenticator (no directory at all) as the
baseline: what the hub's own login handler costs on this machine. Each configuration is also
reported per kind of round: the first logins (the hub creates users and group memberships in
its database) and returning students.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from ldap_hubproc import HubProcess, new_session, post_login

from hub_ext.adapters.ldap.reference_lab import (
    Slapd,
    lab_password,
    reference_lab,
    write_tls_files,
)

ROUNDS = 3
CONCURRENCY = 50
SPREAD = 2.5  # seconds: a seminar group arriving within a few seconds
TARGET_P95_MS, TARGET_LAG_MS = 100.0, 50.0

LAG_MONITOR = """
import asyncio as _asyncio, time as _time


async def _labhub_bench_lag_monitor(path, period=0.01):
    last_flush = _time.monotonic()
    with open(path, "w") as out:
        while True:
            t0 = _time.perf_counter()
            await _asyncio.sleep(period)
            out.write(f"{{_time.time()}} {{_time.perf_counter() - t0 - period}}\\n")
            if _time.monotonic() - last_flush > 0.2:
                out.flush()
                last_flush = _time.monotonic()


_labhub_bench_task = _asyncio.get_running_loop().create_task(
    _labhub_bench_lag_monitor({path!r})
)
"""


pct = benchlib.pct


async def one_round(
    hub: HubProcess, users: list[str], spread: float = 0.0
) -> tuple[list[float], float, float]:
    """All ``users`` log in at once (spread=0) or evenly over ``spread`` seconds."""
    sessions = [new_session() for _ in users]

    async def one(i: int, s: Any, u: str) -> Any:
        await asyncio.sleep(spread * i / len(users))
        return await post_login(s, hub, u, lab_password(u))

    try:
        start = time.time()
        replies = await asyncio.gather(
            *(one(i, s, u) for i, (s, u) in enumerate(zip(sessions, users, strict=True)))
        )
        end = time.time()
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    bad = [r for r in replies if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} logins failed, e.g. {bad[0].status} {bad[0].message}")
    return [r.seconds for r in replies], start, end


async def measure(
    hub: HubProcess, users: list[str], lag_file: Path, spread: float
) -> list[tuple[list[float], list[float]]]:
    """Login times and in-hub loop lags of each of ROUNDS rounds of 50 logins.

    The first round logs the students in for the first time (the hub creates their users and
    group memberships); the later rounds are returning students.
    """
    hub.start()
    try:
        await one_round(hub, users[:5])  # warm-up (first DB rows, TLS contexts)
        rounds: list[tuple[list[float], float, float]] = []
        for _ in range(ROUNDS):
            rounds.append(await one_round(hub, users, spread))
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.4)
    finally:
        hub.stop()
    samples = [tuple(map(float, line.split())) for line in lag_file.read_text().splitlines()]
    return [(t, [lag for ts, lag in samples if s <= ts <= e]) for t, s, e in rounds]


def merged(rounds: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float]]:
    return [t for r in rounds for t in r[0]], [lag for r in rounds for lag in r[1]]


def report(label: str, times: list[float], lags: list[float]) -> None:
    ms = 1000.0
    print(
        f"  {label:<40} login p50 {statistics.median(times) * ms:6.1f} ms  "
        f"p95 {pct(times, 95) * ms:6.1f} ms  max {max(times) * ms:6.1f} ms | "
        f"loop lag p99 {pct(lags, 99) * ms:6.1f} ms  max {max(lags) * ms:6.1f} ms"
    )


async def ldap_only(slapd: Slapd, ca: str, users: list[str]) -> tuple[list[float], list[float]]:
    """50 concurrent authenticate() calls in this process, and this loop's lag meanwhile."""
    from traitlets.config import Config

    from hub_ext.hub.auth.ldap import LabLDAPAuthenticator

    c = Config()
    c.LabLDAPAuthenticator.server_urls = [slapd.url]
    c.LabLDAPAuthenticator.tls_ca_file = ca
    c.LabLDAPAuthenticator.bind_dn_template = "uid={username},ou=people,dc=lab,dc=example"
    c.LabLDAPAuthenticator.group_search_base = "ou=groups,dc=lab,dc=example"
    c.LabLDAPAuthenticator.allowed_groups = ["ml101-a", "ml101-b"]
    auth = LabLDAPAuthenticator(config=c)

    async def timed(u: str) -> float:
        t0 = time.perf_counter()
        await auth.authenticate(None, {"username": u, "password": lab_password(u)})
        return time.perf_counter() - t0

    lags: list[float] = []

    async def monitor(period: float = 0.005) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(period)
            lags.append(time.perf_counter() - t0 - period)

    watcher = asyncio.create_task(monitor())
    try:
        await asyncio.gather(*(timed(u) for u in users))  # warm-up: pooled TLS connections
        lags.clear()
        times = list(await asyncio.gather(*(timed(u) for u in users)))
        return times, list(lags)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await auth.directory.close()


async def main() -> None:
    lab = reference_lab()
    users = [u for u in lab.users if u.startswith("student")][:CONCURRENCY]
    with tempfile.TemporaryDirectory(prefix="labhub-bench-ldap-") as tmp:
        work = Path(tmp)
        tls = write_tls_files(work / "tls")
        slapd = Slapd(work / "slapd", tls, lab)
        slapd.start()
        lag_file = work / "lag.txt"
        config = "\n".join(
            [
                f"c.LabLDAPAuthenticator.server_urls = [{slapd.url!r}]",
                f"c.LabLDAPAuthenticator.tls_ca_file = {str(tls.ca_cert)!r}",
                "c.LabLDAPAuthenticator.bind_dn_template = "
                "'uid={username},ou=people,dc=lab,dc=example'",
                "c.LabLDAPAuthenticator.group_search_base = 'ou=groups,dc=lab,dc=example'",
                "c.LabLDAPAuthenticator.allowed_groups = ['ml101-a', 'ml101-b']",
                "c.Authenticator.manage_groups = True",
                "c.JupyterHub.log_level = 'WARN'",
                LAG_MONITOR.format(path=str(lag_file)),
            ]
        )
        baseline = "\n".join(
            [
                "c.JupyterHub.authenticator_class = 'dummy'",
                "c.DummyAuthenticator.allow_all = True",
                "c.JupyterHub.log_level = 'WARN'",
                LAG_MONITOR.format(path=str(work / "lag-baseline.txt")),
            ]
        )
        results = {}
        try:
            for spread in (0.0, SPREAD):
                results["ldap", spread] = await measure(
                    HubProcess(work / f"hub-{spread}", config), users, lag_file, spread
                )
                results["dummy", spread] = await measure(
                    HubProcess(work / f"hub-baseline-{spread}", baseline),
                    users,
                    work / "lag-baseline.txt",
                    spread,
                )
            ldap_times, ldap_lags = await ldap_only(slapd, str(tls.ca_cert), users)
        finally:
            slapd.stop()

    ms = 1000.0
    print(f"ldap login bench: {ROUNDS} rounds x {CONCURRENCY} logins via POST /hub/login")
    for spread in (0.0, SPREAD):
        when = "all at once" if not spread else f"spread over {SPREAD:g} s"
        for kind, label in (("ldap", "LabLDAPAuthenticator"), ("dummy", "JupyterHub dummy auth")):
            rounds = results[kind, spread]
            report(f"{label}, {when}", *merged(rounds))
            report("  first logins (users created)", *rounds[0])
            report("  returning students", *merged(rounds[1:] or rounds))
    print(
        f"  LDAP part alone ({CONCURRENCY} concurrent authenticate()): "
        f"p50 {statistics.median(ldap_times) * ms:.1f} ms  p95 {pct(ldap_times, 95) * ms:.1f} ms"
        f"  max {max(ldap_times) * ms:.1f} ms | loop lag p99 {pct(ldap_lags, 99) * ms:.1f} ms"
    )
    times, lags = merged(results["ldap", 0.0][1:] or results["ldap", 0.0])
    benchlib.target(
        "ldap-login-p95",
        f"{pct(times, 95) * ms:.1f} ms",
        f"< {TARGET_P95_MS:.0f} ms",
        pct(times, 95) * ms < TARGET_P95_MS,
    )
    benchlib.target(
        "ldap-login-lag-p99",
        f"{pct(lags, 99) * ms:.1f} ms",
        f"< {TARGET_LAG_MS:.0f} ms",
        pct(lags, 99) * ms < TARGET_LAG_MS,
    )


if __name__ == "__main__":
    if benchlib.arguments(__doc__).smoke:
        ROUNDS, CONCURRENCY = 1, 5
    asyncio.run(main())
