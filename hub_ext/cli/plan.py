"""``labhub plan``: plan MIG layouts for a GPU inventory and a seat demand."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub_ext.core.layouts import Layout
from hub_ext.core.mig import Catalog, GpuModel, UnknownGpuModelError, load_catalog
from hub_ext.core.planner import Plan, SeatRequirement, plan
from hub_ext.core.units import SizeError, format_size, parse_size


class PlanInputError(ValueError):
    """Bad command-line input."""


def parse_gpus(catalog: Catalog, text: str) -> tuple[tuple[GpuModel, int], ...]:
    """Parse ``MODEL=COUNT[,MODEL=COUNT...]``."""
    out: list[tuple[GpuModel, int]] = []
    for part in text.split(","):
        name, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            raise PlanInputError(
                f"--gpus entry {part!r} must be MODEL=COUNT with a non-negative integer count"
            )
        out.append((catalog.model(name), int(count)))
    return tuple(out)


def _config_name(layout: Layout | None) -> str:
    if layout is None:
        return "all-disabled"
    counts = layout.counts()
    if len(counts) == 1:
        return "all-" + next(iter(counts))
    return "custom-" + "-".join(f"{n}x{p}" for p, n in sorted(counts.items()))


def to_json(result: Plan) -> dict[str, Any]:
    """The JSON document of ``labhub plan --format json``."""
    layouts = []
    for g in result.groups:
        ch = g.choice
        layouts.append(
            {
                "model": ch.model.name,
                "count": g.count,
                "mig_config": _config_name(ch.layout),
                "sharing": ch.layout is None,
                "instances": []
                if ch.layout is None
                else [
                    {"profile": i.profile.name, "start": i.placement.start}
                    for i in ch.layout.instances
                ],
                "seats_per_gpu": ch.seats,
            }
        )
    return {
        "feasible": result.feasible,
        "seats_requested": result.requirement.seats,
        "seats_max": result.seats_max,
        "layouts": layouts,
        "stranded": {
            "memory_slices": sum(g.count * g.choice.stranded.memory_slices for g in result.groups),
            "compute_slices": sum(
                g.count * g.choice.stranded.compute_slices for g in result.groups
            ),
        },
        "alternatives": [{"model": a.model, "count": a.count} for a in result.alternatives],
    }


def to_mig_parted(result: Plan) -> str:
    """A mig-parted ``version: v1`` config covering the planned layouts."""
    lines = ["version: v1", "mig-configs:"]
    seen: set[str] = set()
    for g in result.groups:
        name = _config_name(g.choice.layout)
        if name in seen:
            continue
        seen.add(name)
        lines.append(f"  {name}:")
        lines.append("    - devices: all")
        if g.choice.layout is None:
            lines.append("      mig-enabled: false")
            continue
        lines.append("      mig-enabled: true")
        lines.append("      mig-devices:")
        for prof, n in sorted(g.choice.layout.counts().items()):
            lines.append(f'        "{prof}": {n}')
    return "\n".join(lines)


def to_table(result: Plan) -> str:
    """Human-readable plan."""
    doc = to_json(result)
    req = result.requirement
    out = [
        f"Demand: {req.seats} seats of >= {format_size(req.min_memory_bytes)} GPU memory",
        f"Feasible: {'yes' if doc['feasible'] else 'no'} (at most {doc['seats_max']} seats)",
    ]
    for lay in doc["layouts"]:
        out.append(
            f"  {lay['count']}x {lay['model']}: nvidia.com/mig.config={lay['mig_config']}"
            f" ({lay['seats_per_gpu']} seats per GPU)"
        )
    st = doc["stranded"]
    out.append(f"Stranded: {st['memory_slices']} memory / {st['compute_slices']} compute slices")
    if doc["alternatives"]:
        out.append("Would meet the demand on its own:")
        out.extend(f"  {a['count']}x {a['model']}" for a in doc["alternatives"])
    return "\n".join(out)


def reference_lab_report() -> str:
    """The plan for the reference lab: 10x A100-40GB, 50 seats of >= 8 GiB."""
    catalog = load_catalog()
    req = SeatRequirement(seats=50, min_memory_bytes=parse_size("8GiB"))
    return to_table(plan(catalog, ((catalog.model("A100-40GB"), 10),), req))


def _run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    try:
        inventory = parse_gpus(catalog, args.gpus)
        if args.seats < 0:
            raise PlanInputError("--seats must be a non-negative integer")
        req = SeatRequirement(args.seats, parse_size(args.min_gpu_memory), args.min_compute_slices)
    except (PlanInputError, UnknownGpuModelError, SizeError) as exc:
        print(f"labhub plan: {exc}", file=sys.stderr)
        return 2
    result = plan(catalog, inventory, req, allow_sharing=args.allow_sharing)
    if args.format == "json":
        print(json.dumps(to_json(result), indent=2))
    elif args.format == "mig-parted":
        print(to_mig_parted(result))
    else:
        print(to_table(result))
    return 0 if result.feasible else 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="plan MIG layouts for a seat demand")
    parser.add_argument("--gpus", required=True, help="MODEL=COUNT[,MODEL=COUNT...]")
    parser.add_argument("--seats", required=True, type=int, help="number of seats")
    parser.add_argument("--min-gpu-memory", required=True, help="e.g. 8GiB or 10GB")
    parser.add_argument("--min-compute-slices", type=int, default=0)
    parser.add_argument("--allow-sharing", action="store_true")
    parser.add_argument("--format", choices=("table", "json", "mig-parted"), default="table")
    parser.set_defaults(func=_run)
