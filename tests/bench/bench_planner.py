"""Benchmark: proven-optimal MIG plans for 1,000 mixed GPUs and 4 seat requirements.

Target: every plan for 1,000 mixed GPUs (125 nodes of 8: A100-40GB, A100-80GB, H100-80GB, A30
in turn) and 4 seat requirements in under 0.2 s, at every demand size: small, about half of
what the GPUs can serve, about all of it, just over and far over (then the planner also works out
how many extra GPUs of every catalog model would meet the demand, and whether sharing would),
and every answer proven optimal by the solver. The reference lab (10x A100-40GB, 50 seats of
>= 8 GiB: infeasible, at most 40; fits with sharing) is timed too. The per-model layout tables
are computed once per process (they do not depend on the demand); that warm-up is reported on its
own. Each case is planned 3 times and the best time counts. The target is checked against the
planning process's CPU time (the solver runs on one thread in the process), which a machine
shared with other work inflates far less than the wall-clock time, printed beside it.

Run with ``make bench``; ``--smoke`` (or ``LABHUB_BENCH_SMOKE=1``) plans 100 GPUs once per
case, in seconds, to show that the benchmark still runs (its timing target then is not
meaningful and is reported against the same goal only for the record).
"""

from __future__ import annotations

import os
import random
import statistics
import time

import benchlib

from hub_ext.core.mig.catalog import Catalog, load_catalog
from hub_ext.core.mig.planner import Node, Requirement, choices, layout_table, plan_nodes

GIB = 2**30
TARGET_S = 0.2
# demand shape: 50% >= 8 GiB, 15% exactly 3g.20gb, 20% >= 20 GB, 15% >= 40 GB; 1,000 GPUs of
# this inventory serve at most about 3,050 seats of that shape
TOTALS = (("small", 300), ("~half", 1_500), ("~capacity", 3_000), ("over", 3_100))
TOTALS += (("2x over", 6_000),)
PROFILES = ("1g.10gb", "2g.20gb", "3g.20gb", "3g.40gb", "1g.5gb", "2g.10gb", "4g.20gb", "1g.12gb")
MEMORY = (4 * GIB, 5 * 10**9, 8 * GIB, 10 * 10**9, 12 * GIB, 20 * 10**9, 24 * GIB, 40 * 10**9)
Demand = tuple[Requirement, ...]


def demand(total: int) -> tuple[Requirement, ...]:
    return (
        Requirement(total * 50 // 100, 8 * GIB),
        Requirement(total * 15 // 100, profile="3g.20gb"),
        Requirement(total * 20 // 100, 20 * 10**9),
        Requirement(total * 15 // 100, 40 * 10**9),
    )


def random_case(rng: random.Random, catalog: Catalog) -> tuple[tuple[Node, ...], Demand, bool]:
    """1,000 GPUs of one to four catalog models (125 nodes of 8, models in turn) and four
    requirements (a memory threshold, some with compute slices, or an exact profile) sharing
    100 to 8,000 seats at random; sharing on or off."""
    models = rng.sample(catalog.models, rng.randint(1, 4))
    nodes = tuple(Node(f"n{k}", ((models[k % len(models)], 8),)) for k in range(125))
    total = rng.randint(100, 8_000)
    weights = [rng.random() for _ in range(4)]
    reqs = []
    for w in weights:
        seats = int(total * w / sum(weights))
        if rng.random() < 0.25:
            reqs.append(Requirement(seats, profile=rng.choice(PROFILES)))
        else:
            reqs.append(Requirement(seats, rng.choice(MEMORY), rng.choice((0, 0, 0, 1, 2))))
    return nodes, tuple(reqs), rng.random() < 0.5


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]
    return (
        f"mean {statistics.mean(ordered):.3f} s, median {ordered[len(ordered) // 2]:.3f} s, "
        f"99th percentile {p99:.3f} s, max {ordered[-1]:.3f} s"
    )


def main() -> int:
    smoke = benchlib.arguments(__doc__).smoke or os.environ.get("LABHUB_BENCH_SMOKE") == "1"
    node_count, scale, repeat, samples = (13, 10, 1, 5) if smoke else (125, 1, 3, 200)
    catalog = load_catalog()
    started = time.perf_counter()
    for model in catalog.models:
        layout_table(model)
    print(
        f"planner: layout tables of {len(catalog.models)} catalog models "
        f"(once per process) in {time.perf_counter() - started:.3f} s"
    )
    mix = [catalog.model(n) for n in ("A100-40GB", "A100-80GB", "H100-80GB", "A30-24GB")]
    nodes = tuple(Node(f"node-{i:03d}", ((mix[i % len(mix)], 8),)) for i in range(node_count))
    lab = (Node("room-a-1", ((mix[0], 5),)), Node("room-b-1", ((mix[0], 5),)))
    cases = [(name, nodes, demand(total // scale)) for name, total in TOTALS]
    cases.append(("reference lab", lab, (Requirement(50, 8 * GIB),)))
    worst = worst_wall = 0.0
    for name, inventory, reqs in cases:
        took = cpu = float("inf")
        for _ in range(repeat):
            choices.cache_clear()
            start, start_cpu = time.perf_counter(), time.process_time()
            result = plan_nodes(catalog, inventory, reqs, allow_sharing=False)
            took = min(took, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        if name != "reference lab":
            worst, worst_wall = max(worst, cpu), max(worst_wall, took)
        extra = f", {len(result.alternatives)} alternatives" if result.alternatives else ""
        extra += ", fits with sharing" if result.sharing else ""
        print(
            f"planner [{name}]: {len(result.gpus)} GPUs, {len(reqs)} requirements, "
            f"{result.seats_requested} seats: {result.seats_max} satisfied "
            f"{list(result.satisfied)}, {result.stranded.total} stranded slices, "
            f"{result.distinct_layouts} distinct layouts{extra} "
            f"in {took:.3f} s (CPU {cpu:.3f} s; every answer proven optimal)"
        )
    rng = random.Random(12)
    walls, cpus = [], []
    for _ in range(samples):
        inventory, reqs, sharing = random_case(rng, catalog)
        choices.cache_clear()
        start, start_cpu = time.perf_counter(), time.process_time()
        plan_nodes(catalog, inventory, reqs, allow_sharing=sharing)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    print(
        f"planner [random]: {samples} random inventories of 1,000 GPUs with 4 requirements: "
        f"{summary(walls)} wall-clock; CPU {summary(cpus)}"
    )
    gpus = node_count * 8
    print(f"planner: slowest {gpus:,}-GPU plan {worst_wall:.3f} s wall-clock")
    benchlib.target(
        "planner-slowest",
        f"{worst:.3f} s CPU for {gpus:,} GPUs",
        f"< {TARGET_S:g} s",
        worst < TARGET_S,
    )
    # plan_nodes returns proven optima only (else it raises): every plan above is one
    planned = len(cases) * repeat + samples
    benchlib.target("planner-proven", f"{planned} of {planned} plans", "all", True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
