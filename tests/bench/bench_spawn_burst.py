"""Class-start burst: 50 students log in and press Start at once on the reference lab (40 slices).

Runs real OpenLDAP, a real JupyterHub with LabKubeSpawner and configurable-http-proxy, and the
emulated reference lab. The 50 students log in through the hub's login form (LDAP binds), then
all spawn ml-101 at once; 40 get a slice, 10 are queued. Printed per spawn (the 40 admitted):

* login: the login form POST;
* hub side, split: pod created, admitted (gate lifted), pod running, route added (from the
  server answering to the proxy route and the "ready" answer), and their sum;
* the single-user process's own start-up (from pod running to its first HTTP answer, as the
  hub's readiness check sees it), reported separately;

with p50 / p95, then the hub's event-loop lag (a 20 ms timer inside the hub process) p50 / p99 /
max during the burst and the hub's resident memory before and after.

``--server real`` (default) runs jupyterhub-singleuser for every student; ``--server light``
runs a tiny HTTP responder instead, to see the hub side without 40 Python start-ups competing
for the CPU. Target: the hub side in all (everything but the single-user start-up) p95 under
1 s. ``--smoke`` starts 6 light servers. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import benchlib
from lab_hub import LabHub, lab_hub
from support import eventually

STUDENTS = [f"student{i:02d}" for i in range(1, 51)]
LAG_MONITOR = """
import asyncio as _asyncio

def _lag_monitor(path={path!r}, period=0.02):
    loop = _asyncio.get_running_loop()
    out = open(path, "a", buffering=1)

    def tick(expected):
        now = loop.time()
        out.write(f"{{now:.3f}} {{(now - expected) * 1000:.2f}}\\n")
        loop.call_at(now + period, tick, now + period)

    loop.call_soon(tick, loop.time())
    if {debug!r}:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.1

_lag_monitor()
"""
PROFILER = """
import atexit as _atexit
import cProfile as _cProfile

_profile = _cProfile.Profile()
_profile.enable()
_atexit.register(lambda: _profile.dump_stats({path!r}))
"""
SQLITE_WAL = """
from sqlalchemy import event as _event
from sqlalchemy.engine import Engine as _Engine


@_event.listens_for(_Engine, "connect")
def _sqlite_pragmas(connection, _record):
    if type(connection).__module__.startswith("sqlite3"):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
"""
TIMINGS = re.compile(
    r"\[I (\S+ \S+) JupyterHub spawner:\d+\] lab spawn timings for (\S+): pod created "
    r"([\d.]+) s, admitted ([\d.]+) s, running ([\d.]+) s, answering ([\d.]+) s"
)
TOOK = re.compile(r"User (\S+) took ([\d.]+) seconds to start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its waited-for children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], unit: str = "s") -> str:
    if not values:
        return f"  {name:<34} (none)"
    return (
        f"  {name:<34} p50 {statistics.median(values):7.3f} {unit}   "
        f"p95 {pct(values, 0.95):7.3f} {unit}   max {max(values):7.3f} {unit}"
    )


async def main(server: str, profile: str, wal: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        real = tuple(STUDENTS) if server == "real" else ()
        async with lab_hub(Path(tmp), "e2e_profiles.provider", real_servers=real) as hub:
            lag_file = Path(tmp) / "lag.txt"
            config = hub.work / "jupyterhub_config.py"
            extra = LAG_MONITOR.format(path=str(lag_file), debug=False)
            if profile:
                extra += PROFILER.format(path=str(Path(profile).resolve()))
            if wal:
                extra += SQLITE_WAL
            config.write_text(config.read_text() + extra)
            await hub.stop_hub()
            await hub.start_hub()
            await burst(hub, lag_file, server, profile)
            await hub.stop_hub()  # writes the profile
            if profile:
                Path(profile).with_suffix(".log").write_text(hub.log_text())


async def login_timed(hub: LabHub, user: str) -> float:
    started = time.perf_counter()
    browser = await hub.login(user)
    await browser.close()
    return time.perf_counter() - started


async def burst(hub: LabHub, lag_file: Path, server: str, profile: str) -> None:
    assert hub.proc is not None and hub.api is not None
    before = rss_mib(hub.proc.pid)
    logins = await asyncio.gather(*(login_timed(hub, u) for u in STUDENTS))
    requested: dict[str, float] = {}
    ready_at: dict[str, float] = {}

    async def spawn(user: str) -> None:
        assert hub.api is not None
        requested[user] = time.time()
        progress = asyncio.create_task(ready_event(user))
        try:
            status, text = await hub.start(user)
            assert status in (201, 202), text
            if status == 201:
                ready_at[user] = time.time()
            await progress
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)

    async def ready_event(user: str) -> None:
        """Follow the spawn's progress stream (pushed by the hub) until it says ready."""
        assert hub.api is not None
        url = f"{hub.url}/hub/api/users/{user}/server/progress"
        while user not in ready_at:
            with contextlib.suppress(aiohttp.ClientError):
                async with hub.api.get(url) as resp:
                    async for line in resp.content:
                        if b'"ready": true' in line:
                            ready_at.setdefault(user, time.time())
                            return
            await asyncio.sleep(0.5)

    burst_start = time.monotonic()  # the hub's loop.time() uses the same clock
    hub_cpu, own_cpu = cpu_seconds(hub.proc.pid), time.process_time()
    tasks = [asyncio.create_task(spawn(u)) for u in STUDENTS]

    served = min(40, len(STUDENTS))

    async def forty_ready() -> bool:
        return len(ready_at) >= served

    await eventually(forty_ready, 600, f"{served} servers ready")
    burst_end = time.monotonic()
    hub_cpu = cpu_seconds(hub.proc.pid) - hub_cpu
    own_cpu = time.process_time() - own_cpu
    queued = await hub.gated()
    line = await hub.progress_line(queued[0].removeprefix("jupyter-"), "position") if queued else ""
    after = rss_mib(hub.proc.pid)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    log = hub.log_text()
    split: dict[str, tuple[float, float, float, float]] = {}
    for match in TIMINGS.finditer(log):
        split[match.group(2)] = (
            float(match.group(3)),
            float(match.group(4)),
            float(match.group(5)),
            float(match.group(6)),
        )
    took = {m.group(1): float(m.group(2)) for m in TOOK.finditer(log)}
    users = [u for u in ready_at if u in split and u in took]
    total = [ready_at[u] - requested[u] for u in users]
    single = [split[u][3] - split[u][2] for u in users]
    hub_side = [t - s for t, s in zip(total, single, strict=True)]
    # from the server answering (the spawner's last step) to the student's "ready"
    route = [max(0.0, (ready_at[u] - requested[u]) - took[u]) for u in users]
    lags, login_lags = [], []
    for text in lag_file.read_text().splitlines():
        stamp, value = (float(x) for x in text.split())
        if burst_start <= stamp <= burst_end:
            lags.append(value)
        elif stamp < burst_start:
            login_lags.append(value)
    burst_lags = lags
    print(f"burst of {len(STUDENTS)} students on 40 slices, servers: {server}")
    print(row("login (form POST, LDAP bind)", logins))
    print("per-spawn hub-side time:")
    print(row("pod created", [split[u][0] for u in users]))
    print(row("admitted (gate lifted)", [split[u][1] - split[u][0] for u in users]))
    print(row("pod running", [split[u][2] - split[u][1] for u in users]))
    print(row("route added + ready seen", route))
    print(row("hub side in all", hub_side))
    print(row("single-user start-up (separate)", single))
    print(row("request -> ready (everything)", total))
    print(f"queued: {len(queued)}; one of them sees: {line.strip()[:150]}")
    print(
        f"hub event-loop lag during the burst: p50 {pct(burst_lags, 0.5):.1f} ms, "
        f"p99 {pct(burst_lags, 0.99):.1f} ms, max {max(burst_lags):.1f} ms "
        f"({len(burst_lags)} samples of a 20 ms timer)"
    )
    print(f"hub event-loop lag while the 50 logged in: p99 {pct(login_lags[-2000:], 0.99):.1f} ms")
    print(
        f"CPU during the burst ({burst_end - burst_start:.1f} s): hub {hub_cpu:.1f} s, "
        f"emulated cluster + clients {own_cpu:.1f} s (2 cores shared with the servers)"
    )
    print(f"hub RSS: before {before:.0f} MiB, after {after:.0f} MiB")
    p95 = pct(hub_side, 0.95)
    benchlib.target("spawn-burst-hub-side-p95", f"{p95:.3f} s", "< 1 s", p95 < 1.0)
    print(f"run at {datetime.now().isoformat(timespec='seconds')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=("real", "light"), default="real")
    parser.add_argument("--profile", default="", help="write a cProfile of the hub to this file")
    parser.add_argument(
        "--sqlite-wal",
        action="store_true",
        help="set WAL mode and synchronous=NORMAL again (the tests' hub config already uses "
        "hub_ext.hub.hubdb.use_sqlite_wal)",
    )
    args = benchlib.arguments(__doc__, parser)
    if args.smoke:
        STUDENTS, args.server = STUDENTS[:6], "light"
    asyncio.run(main(args.server, args.profile, args.sqlite_wal))
