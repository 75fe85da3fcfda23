"""``labhub plan``: plan MIG layouts for a GPU inventory and a seat demand."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from hub_ext.core.mig import migparted
from hub_ext.core.mig.catalog import Catalog, GpuModel, UnknownGpuModelError, load_catalog
from hub_ext.core.mig.planner import (
    TIME_LIMIT_S,
    MultiPlan,
    Node,
    PlanSolverError,
    PlanTimeLimitError,
    Requirement,
    plan_nodes,
)
from hub_ext.core.units import SizeError, parse_size


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


def reference_lab_report() -> str:
    """The plan for the reference lab: 10x A100-40GB, 50 seats of >= 8 GiB."""
    catalog = load_catalog()
    nodes = (Node("gpus", ((catalog.model("A100-40GB"), 10),)),)
    return multi_to_table(plan_nodes(catalog, nodes, (Requirement(50, parse_size("8GiB")),)))


def parse_require(text: str) -> Requirement:
    """Parse ``SEATS:MIN_MEMORY[:PROFILE]`` (MIN_MEMORY may be empty with a PROFILE)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0].strip().isdigit():
        raise PlanInputError(
            f"--require {text!r} must be SEATS:MIN_MEMORY[:PROFILE], e.g. 30:8GiB or 10::3g.20gb"
        )
    memory = parse_size(parts[1]) if parts[1].strip() else 0
    profile = parts[2].strip() if len(parts) == 3 and parts[2].strip() else None
    if profile is None and memory == 0:
        raise PlanInputError(f"--require {text!r} needs a MIN_MEMORY or a PROFILE")
    return Requirement(int(parts[0]), memory, 0, profile)


def load_nodes(catalog: Catalog, path: str) -> tuple[Node, ...]:
    """Read ``nodes: [{name: str, gpus: {MODEL: COUNT}}]`` from a YAML file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise PlanInputError(
            f"--nodes {path}: cannot read YAML ({exc.__class__.__name__})"
        ) from exc
    rows = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise PlanInputError(f"--nodes {path}: expected 'nodes:' with a list of {{name, gpus}}")
    out: list[Node] = []
    for i, row in enumerate(rows):
        gpus = row.get("gpus") if isinstance(row, dict) else None
        if not isinstance(gpus, dict) or not isinstance(row.get("name"), str):
            raise PlanInputError(f"--nodes {path}: nodes[{i}] needs name (str) and gpus (MODEL: N)")
        pairs = []
        for model, count in gpus.items():
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise PlanInputError(f"--nodes {path}: nodes[{i}].gpus.{model} must be an int >= 0")
            pairs.append((catalog.model(str(model)), count))
        out.append(Node(row["name"], tuple(pairs)))
    return tuple(out)


def multi_to_json(result: MultiPlan) -> dict[str, Any]:
    """The JSON document of a multi-requirement plan."""
    return {
        "feasible": result.feasible,
        "seats_requested": result.seats_requested,
        "seats_max": result.seats_max,
        "requirements": [
            {
                "seats": r.seats,
                "min_memory_bytes": r.min_memory_bytes,
                "profile": r.profile,
                "satisfied": s,
            }
            for r, s in zip(result.requirements, result.satisfied, strict=True)
        ],
        "layouts": [
            {
                "node": g.node,
                "gpu": g.index,
                "model": g.model.name,
                "mig_config": migparted.layout_name(g.option.layout),
                "sharing": g.option.layout is None,
                "instances": []
                if g.option.layout is None
                else [i.profile.name for i in g.option.layout.instances],
                "seats": list(g.option.seats),
            }
            for g in result.gpus
        ],
        "nodes": [{"node": c.node, "mig_config": c.config} for c in migparted.node_configs(result)],
        "stranded": {
            "memory_slices": result.stranded.memory_slices,
            "compute_slices": result.stranded.compute_slices,
        },
        "distinct_layouts": result.distinct_layouts,
        "distinct_layouts_proven": True,  # kept for readers of older output: always proven
        "alternatives": [
            {
                "kind": "more-gpus",
                "model": a.model,
                "count": a.alone,
                "extra": a.extra,
                "proven": True,
            }
            for a in result.alternatives
        ]
        + (
            [
                {
                    "kind": "sharing",
                    "model": None,
                    "count": len(result.gpus),
                    "extra": 0,
                    "proven": True,
                    "allow_sharing": True,
                    "seats": result.sharing.seats,
                }
            ]
            if result.sharing
            else []
        ),
    }


def multi_to_table(result: MultiPlan) -> str:
    """Human-readable multi-requirement plan."""
    out = [
        f"Feasible: {'yes' if result.feasible else 'no'} "
        f"({result.seats_max} of {result.seats_requested} seats)"
    ]
    for r, s in zip(result.requirements, result.satisfied, strict=True):
        out.append(f"  {r.describe()}: {s} satisfied")
    for c in migparted.node_configs(result):
        out.append(f"  node {c.node}: nvidia.com/mig.config={c.config}")
    st = result.stranded
    out.append(f"Stranded: {st.memory_slices} memory / {st.compute_slices} compute slices")
    out.append(f"Distinct layouts: {result.distinct_layouts}")
    if result.alternatives:
        out.append("Extra GPUs that would meet the demand (or GPUs of that model alone):")
        out.extend(f"  +{a.extra} {a.model} (alone: {a.alone})" for a in result.alternatives)
    if result.sharing:
        out.append(
            f"Fits without MIG: whole GPUs time-sliced serve all {result.sharing.seats} seats "
            "(no memory isolation between seats; --allow-sharing plans that)"
        )
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    try:
        reqs = [parse_require(t) for t in args.require or ()]
        if args.seats is not None and args.min_gpu_memory is not None:
            reqs.insert(
                0, Requirement(args.seats, parse_size(args.min_gpu_memory), args.min_compute_slices)
            )
        if not reqs or any(r.seats < 0 for r in reqs):
            raise PlanInputError(
                "give --require SEATS:MIN_MEMORY[:PROFILE] or --seats with "
                "--min-gpu-memory (non-negative seats)"
            )
        nodes = load_nodes(catalog, args.nodes) if args.nodes else ()
        if args.gpus:
            nodes += (Node("gpus", parse_gpus(catalog, args.gpus)),)
        if not nodes:
            raise PlanInputError("give --gpus MODEL=COUNT[,...] or --nodes FILE.yaml")
    except (PlanInputError, UnknownGpuModelError, SizeError) as exc:
        print(f"labhub plan: {exc}", file=sys.stderr)
        return 2
    if args.exact:
        print(
            "labhub plan: --exact has no effect any more (every answer is proven optimal); "
            "it can be dropped",
            file=sys.stderr,
        )
    if not args.time_limit > 0:
        print("labhub plan: --time-limit must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        result = plan_nodes(
            catalog,
            nodes,
            tuple(reqs),
            allow_sharing=args.allow_sharing,
            time_limit=args.time_limit,
        )
    except PlanTimeLimitError as exc:
        print(f"labhub plan: {exc}", file=sys.stderr)
        return 4
    except PlanSolverError as exc:  # a bug, not bad input
        print(f"labhub plan: {exc}; please report it with this command line", file=sys.stderr)
        return 4
    if args.format == "json":
        print(json.dumps(multi_to_json(result), indent=2))
    elif args.format == "mig-parted":
        print(migparted.render(result), end="")
    else:
        print(multi_to_table(result))
    return 0 if result.feasible else 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="plan MIG layouts for a seat demand")
    parser.add_argument("--gpus", help="MODEL=COUNT[,MODEL=COUNT...]")
    parser.add_argument("--seats", type=int, help="number of seats")
    parser.add_argument("--min-gpu-memory", help="e.g. 8GiB or 10GB")
    parser.add_argument(
        "--require",
        action="append",
        help="repeatable seat requirement SEATS:MIN_MEMORY[:PROFILE], e.g. 30:8GiB or 10::3g.20gb",
    )
    parser.add_argument("--nodes", help="YAML file: nodes: [{name: NODE, gpus: {MODEL: COUNT}}]")
    parser.add_argument("--min-compute-slices", type=int, default=0)
    parser.add_argument("--allow-sharing", action="store_true")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=TIME_LIMIT_S,
        metavar="SECONDS",
        help="most seconds each solver run may take, a safety net: typical plans take "
        f"milliseconds; past it labhub plan stops with exit code 4 (default {TIME_LIMIT_S:g})",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="no effect (every answer is proven optimal); accepted for existing scripts",
    )
    parser.add_argument("--format", choices=("table", "json", "mig-parted"), default="table")
    parser.set_defaults(func=_run)
