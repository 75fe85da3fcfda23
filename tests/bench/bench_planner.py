"""Benchmark: exact MIG plan for 1,000 mixed GPUs and 4 seat requirements (figures printed).

Target: an optimal plan for 1,000 mixed GPUs (125 nodes of 8: A100-40GB, A100-80GB, H100-80GB,
A30 in turn) and 4 seat requirements in under 1 s, at every demand size: small, about half of
what the GPUs can serve, about all of it, just over and far over (then the planner also works out
how many extra GPUs of every catalog model would meet the demand). The reference lab
(10x A100-40GB, 50 seats of >= 8 GiB: infeasible, at most 40) is timed too. The per-model
layout tables are computed once per process (they do not depend on the demand); that warm-up is
reported on its own. ``--smoke`` plans the small demand and the reference lab only. Run with
``make bench``.
"""

from __future__ import annotations

import time

import benchlib

from hub_ext.core.mig.catalog import load_catalog
from hub_ext.core.multiplan import Node, Requirement, choices, layout_table, plan_nodes

GIB = 2**30
TARGET_S = 1.0
# demand shape: 50% >= 8 GiB, 15% exactly 3g.20gb, 20% >= 20 GB, 15% >= 40 GB; this inventory
# serves at most about 3,050 seats of that shape
TOTALS = (("small", 300), ("~half", 1_500), ("~capacity", 3_000), ("over", 3_100))
TOTALS += (("2x over", 6_000),)


def demand(total: int) -> tuple[Requirement, ...]:
    return (
        Requirement(total * 50 // 100, 8 * GIB),
        Requirement(total * 15 // 100, profile="3g.20gb"),
        Requirement(total * 20 // 100, 20 * 10**9),
        Requirement(total * 15 // 100, 40 * 10**9),
    )


def main() -> int:
    smoke = benchlib.arguments(__doc__).smoke
    catalog = load_catalog()
    started = time.perf_counter()
    for model in catalog.models:
        layout_table(model)
    print(
        f"planner: layout tables of {len(catalog.models)} catalog models "
        f"(once per process) in {time.perf_counter() - started:.3f} s"
    )
    mix = [catalog.model(n) for n in ("A100-40GB", "A100-80GB", "H100-80GB", "A30-24GB")]
    nodes = tuple(Node(f"node-{i:03d}", ((mix[i % len(mix)], 8),)) for i in range(125))
    lab = (Node("room-a-1", ((mix[0], 5),)), Node("room-b-1", ((mix[0], 5),)))
    totals = TOTALS[:1] if smoke else TOTALS
    cases = [(name, nodes, demand(total)) for name, total in totals]
    cases.append(("reference lab", lab, (Requirement(50, 8 * GIB),)))
    worst = 0.0
    for name, inventory, reqs in cases:
        choices.cache_clear()
        start = time.perf_counter()
        result = plan_nodes(catalog, inventory, reqs, allow_sharing=False)
        took = time.perf_counter() - start
        worst = max(worst, took)
        extra = f", {len(result.alternatives)} alternatives" if result.alternatives else ""
        print(
            f"planner [{name}]: {len(result.gpus)} GPUs, {len(reqs)} requirements, "
            f"{result.seats_requested} seats: {result.seats_max} satisfied "
            f"{list(result.satisfied)}, {result.stranded.total} stranded slices, "
            f"{result.distinct_layouts} distinct layouts{extra} "
            f"in {took:.3f} s"
        )
    benchlib.target(
        "planner-slowest",
        f"{worst:.3f} s over {len(cases)} plans",
        f"< {TARGET_S:g} s",
        worst < TARGET_S,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
