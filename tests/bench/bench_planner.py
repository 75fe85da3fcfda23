"""Benchmark: plan 1,000 mixed GPUs (figures printed, no assertions)."""

from __future__ import annotations

import time

from hub_ext.core.layouts import maximal_layouts
from hub_ext.core.mig import load_catalog
from hub_ext.core.planner import SeatRequirement, plan


def main() -> None:
    catalog = load_catalog()
    inventory = tuple((m, 1000 // len(catalog.models)) for m in catalog.models)
    for m in catalog.models:
        maximal_layouts(m)  # enumeration is cached once per process
    for gib in (5, 8, 10, 20):
        start = time.perf_counter()
        result = plan(catalog, inventory, SeatRequirement(3000, gib * 2**30), allow_sharing=True)
        took = time.perf_counter() - start
        gpus = sum(n for _, n in inventory)
        print(f"planner: {gpus} GPUs, seats >= {gib} GiB: {result.seats_max} seats in {took:.4f} s")


if __name__ == "__main__":
    main()
