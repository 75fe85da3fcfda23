"""Benchmark: exact plan for 1,000 mixed GPUs and 4 seat requirements (figures printed)."""

from __future__ import annotations

import time

from hub_ext.core.mig import load_catalog
from hub_ext.core.multiplan import Node, Requirement, plan_nodes

GIB = 2**30


def main() -> None:
    catalog = load_catalog()
    models = catalog.models
    nodes = tuple(Node(f"node-{i:03d}", ((models[i % len(models)], 8),)) for i in range(125))
    demands = (
        (
            Requirement(30, 8 * GIB),
            Requirement(10, profile="3g.20gb"),
            Requirement(5, 20 * 10**9),
            Requirement(5, 40 * 10**9),
        ),
        (
            Requirement(60, 8 * GIB),
            Requirement(20, profile="3g.20gb"),
            Requirement(15, 20 * 10**9),
            Requirement(10, 40 * 10**9),
        ),
    )
    for reqs in demands:
        start = time.perf_counter()
        result = plan_nodes(catalog, nodes, reqs, allow_sharing=False)
        took = time.perf_counter() - start
        print(
            f"planner: {len(result.gpus)} GPUs, {len(reqs)} requirements, "
            f"{result.seats_requested} seats: {result.seats_max} satisfied, "
            f"{result.stranded.total} stranded slices in {took:.3f} s"
        )


if __name__ == "__main__":
    main()
