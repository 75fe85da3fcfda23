"""Class start, three stacks side by side: LabHub, the stock KubeSpawner + ldapauthenticator
stack, and JupyterHub's own floor, on the same emulated cluster and the same slapd.

Each stack (see ``class_start_stacks.py``) meets three arrival patterns, each on a fresh hub:

* ``at-once``: every student logs in and presses Start at the same instant (50 students on the
  reference lab's 40 slices: what the 10 beyond the slices see is printed for both GPU stacks);
* ``spread``: the same 50 students arrive evenly within 10 s;
* ``hubtraf``: 500 students log in at 10 logins/s and open their home page (no spawn), on
  loopback only.

Printed per stack: login p50/p95, the hub-side spawn p50/p95 and its phases (pod created,
admitted, running, server answering, route added: where the stack has the phase), hub CPU
seconds per student, the hub's event-loop lag p99 (a 20 ms timer inside the hub process) and
the errors; then the ratios LabHub/stock and LabHub/floor and the targets. ``--profile DIR``
profiles each hub during the ``at-once`` burst (``--profile-patterns`` chooses) and prints the
top costs per spawn.

``--smoke`` runs 6 students on 4 slices, 6 within 2 s and 20 students at 10/s (about a minute
on a small machine). Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import benchlib
from class_start_profile import summary
from class_start_runs import PodWatch, Run, run_pattern
from class_start_stacks import LABELS, STACKS, BenchHub
from lab_hub import LAB, REFERENCE_LAB

from hub_ext.adapters.ldap.reference_lab import (
    LabGroup,
    ReferenceLab,
    Slapd,
    lab_password,
    write_tls_files,
)
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import ClusterConfig, load_cluster_config, parse_cluster_config
from hub_ext.devcluster.informer import api_client

PATTERNS = ("at-once", "spread", "hubtraf")


@dataclasses.dataclass(frozen=True)
class Size:
    students: int  # at-once and spread
    spread_s: float
    hubtraf_users: int
    hubtraf_rate: float  # logins per second
    stock_start_timeout: int
    window_timeout: float

    def offsets(self, pattern: str) -> list[float]:
        if pattern == "at-once":
            return [0.0] * self.students
        if pattern == "spread":
            return [self.spread_s * i / self.students for i in range(self.students)]
        return [i / self.hubtraf_rate for i in range(self.hubtraf_users)]


FULL = Size(50, 10.0, 500, 10.0, 60, 300.0)
SMOKE = Size(6, 2.0, 20, 10.0, 15, 120.0)


def directory(students: int) -> ReferenceLab:
    """The reference lab's directory with ``students`` students (ml101-b takes the extra)."""
    names = tuple(f"student{i:02d}" for i in range(1, students + 1))
    extra = tuple(n for n in names if n not in LAB.users)
    groups = tuple(
        dataclasses.replace(g, members=g.members + extra) if g.cn == "ml101-b" else g
        for g in LAB.groups
    )
    users = LAB.users + extra
    return ReferenceLab(LAB.base_dn, users, groups, {u: lab_password(u) for u in users})


def cluster_config(smoke: bool) -> ClusterConfig:
    if not smoke:
        return load_cluster_config(REFERENCE_LAB)
    gpu = {
        "model": "A100-SXM4-40GB",
        "count": 1,
        "migStrategy": "mixed",
        "migConfig": "all-1g.10gb",
    }
    nodes = [
        {"name": "room-a-core", "zone": "room-a", "cpu": 16, "memory": "64Gi"},
        {"name": "room-a-gpu-1", "zone": "room-a", "cpu": 64, "memory": "384Gi", "gpus": gpu},
    ]
    classes = [{"name": "ceph-rbd", "default": True, "provisioner": "rbd.csi.ceph.com"}]
    return parse_cluster_config({"name": "smoke-lab", "nodes": nodes, "storageClasses": classes})


async def main(args: argparse.Namespace) -> None:
    size = SMOKE if args.smoke else FULL
    lab = directory(max(size.students, size.hubtraf_users, 50))
    assert all(isinstance(g, LabGroup) for g in lab.groups)
    config = cluster_config(args.smoke)
    slices = 4 if args.smoke else 40
    allowed = [lab.group_dn(g) for g in ("ml101-a", "ml101-b", "cv201", "hub-admins")]
    print(f"class start, three stacks: {benchlib.load_note()}", flush=True)
    runs: dict[tuple[str, str], Run] = {}
    with tempfile.TemporaryDirectory(prefix="labhub-bench-class-") as tmp:
        work = Path(tmp)
        slapd = Slapd(work / "slapd", write_tls_files(work / "tls"), lab)
        slapd.start()
        try:
            async with (
                DevCluster(config, work / "cluster") as cluster,
                api_client(cluster.api.url) as client,
            ):
                from kubernetes_asyncio.client import CoreV1Api

                watch = PodWatch(CoreV1Api(client))
                watch.informer.start()
                await watch.informer.synced.wait()
                try:
                    for pattern in args.patterns.split(","):
                        for stack in STACKS:
                            users = [
                                f"student{i:02d}"
                                for i in range(
                                    1,
                                    1
                                    + (
                                        size.hubtraf_users
                                        if pattern == "hubtraf"
                                        else size.students
                                    ),
                                )
                            ]
                            profile = ""
                            if args.profile and pattern in args.profile_patterns.split(","):
                                profile = str(Path(args.profile).resolve() / pattern / stack)
                                Path(profile).mkdir(parents=True, exist_ok=True)
                            hub = BenchHub(
                                stack,
                                work / f"{stack}-{pattern}",
                                slapd,
                                cluster.kubeconfig,
                                allowed,
                                size.stock_start_timeout,
                                profile,
                            )
                            started = time.monotonic()
                            run = Run(stack, pattern, users, slices)
                            runs[stack, pattern] = await run_pattern(
                                hub, watch, run, size.offsets(pattern), size.window_timeout
                            )
                            print(
                                f"  ran {LABELS[stack]} {pattern}: {len(users)} students in "
                                f"{time.monotonic() - started:.0f} s",
                                flush=True,
                            )
                finally:
                    await watch.informer.stop()
        finally:
            slapd.stop()
    report(runs, size, slices)
    if args.profile:
        for pattern in PATTERNS:
            for stack in ("labhub", "floor", "stock"):
                path = Path(args.profile).resolve() / pattern / stack / "hub.prof"
                if path.exists():
                    run = runs[stack, pattern]
                    count = run.expected_ready if run.spawns else len(run.users)
                    print(summary(LABELS[stack], pattern, path, count))


def fmt(value: float, unit: str = "s") -> str:
    if math.isnan(value):
        return "-"
    if unit == "n":
        return f"{value:.0f}"
    return f"{value * 1000:.0f} ms" if unit == "ms-from-s" else f"{value:.3f} {unit}".strip()


def report(runs: dict[tuple[str, str], Run], size: Size, slices: int) -> None:
    for pattern in [p for p in PATTERNS if ("labhub", p) in runs]:
        sample = runs["labhub", pattern]
        what = {
            "at-once": f"{size.students} students at the same instant on {slices} slices",
            "spread": f"{size.students} students within {size.spread_s:g} s on {slices} slices",
            "hubtraf": f"{size.hubtraf_users} students at {size.hubtraf_rate:g} logins/s, "
            "login + home page",
        }[pattern]
        print(f"\n== {pattern}: {what}")
        header = "".join(f"{LABELS[s]:>12}" for s in STACKS)
        print(f"  {'':<30}{header}{'LabHub/stock':>14}{'LabHub/floor':>14}")
        rows: list[tuple[str, dict[str, float]]] = []
        logins = {s: [lg.seconds for lg in runs[s, pattern].logins if not lg.error] for s in STACKS}
        rows.append(("login p50 (s)", {s: benchlib.median(v) for s, v in logins.items()}))
        rows.append(("login p95 (s)", {s: benchlib.pct(v, 95) for s, v in logins.items()}))
        if sample.spawns:
            for phase, label in (
                ("total", "hub-side spawn"),
                ("created", "  pod created"),
                ("admitted", "  admitted (gate lifted)"),
                ("running", "  pod running"),
                ("answering", "  server answering"),
                ("route", "  route added"),
            ):
                values = {s: runs[s, pattern].phase(phase) for s in STACKS}
                rows.append(
                    (f"{label} p50 (s)", {s: benchlib.median(v) for s, v in values.items()})
                )
                rows.append(
                    (f"{label} p95 (s)", {s: benchlib.pct(v, 95) for s, v in values.items()})
                )
        rows.append(
            (
                "hub CPU per student (s)",
                {s: runs[s, pattern].cpu / len(runs[s, pattern].users) for s in STACKS},
            )
        )
        rows.append(
            ("loop lag p99 (ms)", {s: benchlib.pct(runs[s, pattern].lags(), 99) for s in STACKS})
        )
        rows.append(
            (
                "loop lag max (ms)",
                {s: max(runs[s, pattern].lags(), default=math.nan) for s in STACKS},
            )
        )
        rows.append(("errors", {s: float(len(runs[s, pattern].errors())) for s in STACKS}))
        for label, values in rows:
            unit = "n" if label == "errors" else ""
            cells = "".join(f"{fmt(values[s], unit):>12}" for s in STACKS)
            r1 = benchlib.ratio(values["labhub"], values["stock"])
            r2 = benchlib.ratio(values["labhub"], values["floor"])
            print(f"  {label:<30}{cells}{fmt(r1, 'x'):>14}{fmt(r2, 'x'):>14}")
        for stack in STACKS:
            run = runs[stack, pattern]
            for line in run.outcome:
                print(f"  {LABELS[stack]}: {line}")
            for err in sorted(set(run.errors()))[:3]:
                print(f"  {LABELS[stack]} error: {err[:200]}")
    targets(runs)


def targets(runs: dict[tuple[str, str], Run]) -> None:
    """The goals; those whose arrival patterns did not run are left out."""
    print()
    ran = {p for _s, p in runs}
    if not ran >= set(PATTERNS):
        print(f"(only {', '.join(sorted(ran))} ran: the targets need every pattern)")
        return

    def cpu(stack: str) -> float:
        burst = [runs[stack, p] for p in ("at-once", "spread")]
        return sum(r.cpu for r in burst) / sum(len(r.users) for r in burst)

    lab_cpu, stock_cpu = cpu("labhub"), cpu("stock")
    benchlib.target(
        "cpu-per-student",
        f"LabHub {lab_cpu * 1000:.0f} ms, stock {stock_cpu * 1000:.0f} ms "
        f"({benchlib.ratio(lab_cpu, stock_cpu):.2f} x)",
        "<= 1.10 x stock",
        lab_cpu <= 1.10 * stock_cpu,
    )
    for pattern in PATTERNS:
        p95 = {
            s: benchlib.pct([lg.seconds for lg in runs[s, pattern].logins if not lg.error], 95)
            for s in ("labhub", "stock")
        }
        benchlib.target(
            f"login-p95-{pattern}",
            f"LabHub {p95['labhub']:.3f} s, stock {p95['stock']:.3f} s",
            "<= stock",
            p95["labhub"] <= p95["stock"],
        )
    lag = {s: benchlib.pct(runs[s, "at-once"].lags(), 99) for s in ("labhub", "stock")}
    benchlib.target(
        "burst-lag-p99",
        f"LabHub {lag['labhub']:.0f} ms, stock {lag['stock']:.0f} ms",
        "<= 0.5 x stock",
        lag["labhub"] <= 0.5 * lag["stock"],
    )
    spread = runs["labhub", "spread"]
    spawn_p95 = benchlib.pct(spread.phase("total"), 95)
    benchlib.target("spread-spawn-p95", f"{spawn_p95:.3f} s", "< 1 s", spawn_p95 < 1.0)
    spread_lag = benchlib.pct(spread.lags(), 99)
    benchlib.target("spread-lag-p99", f"{spread_lag:.0f} ms", "< 100 ms", spread_lag < 100)
    traf = runs["labhub", "hubtraf"]
    errors = len(traf.errors())
    benchlib.target("hubtraf-errors", f"{errors} of {len(traf.users)}", "0", errors == 0)
    traf_p95 = benchlib.pct([lg.seconds for lg in traf.logins if not lg.error], 95)
    benchlib.target("hubtraf-login-p95", f"{traf_p95:.3f} s", "< 1 s", traf_p95 < 1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--patterns",
        default=",".join(PATTERNS),
        help=f"comma-separated arrival patterns to run (default: all of {', '.join(PATTERNS)})",
    )
    parser.add_argument("--profile", default="", help="profile each hub into DIR")
    parser.add_argument(
        "--profile-patterns",
        default="at-once",
        help="comma-separated arrival patterns to profile (default: at-once)",
    )
    arguments = benchlib.arguments(__doc__, parser)
    for option in ("patterns", "profile_patterns"):
        unknown = set(getattr(arguments, option).split(",")) - set(PATTERNS)
        if unknown:
            parser.error(
                f"--{option.replace('_', '-')}: unknown pattern {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(PATTERNS)}"
            )
    asyncio.run(main(arguments))
