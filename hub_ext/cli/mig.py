"""``labhub mig profiles MODEL``: show the MIG catalog entry of a GPU model."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub_ext.core.mig.catalog import UnknownGpuModelError, load_catalog


def _profiles(args: argparse.Namespace) -> int:
    try:
        model = load_catalog().model(args.model)
    except UnknownGpuModelError as exc:
        print(f"labhub mig profiles: {exc}", file=sys.stderr)
        return 2
    rows = [
        {
            "name": p.name,
            "memory_slices": p.memory_slices,
            "compute_slices": p.compute_slices,
            "memory_mib": p.memory_mib,
            "sm_count": p.sm_count,
            "max_instances": p.max_instances,
            "placements": [{"start": pl.start, "size": pl.size} for pl in p.placements],
        }
        for p in model.profiles
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{model.name} ({model.memory_mib} MiB, {model.compute_slices} compute slices)")
    print(f"{'profile':<12}{'mem':>4}{'cmp':>4}{'MiB':>8}{'SMs':>5}{'max':>4}  placements")
    for r in rows:
        starts = ",".join(str(pl["start"]) for pl in r["placements"])
        size = r["placements"][0]["size"] if r["placements"] else 0
        print(
            f"{r['name']:<12}{r['memory_slices']:>4}{r['compute_slices']:>4}{r['memory_mib']:>8}"
            f"{r['sm_count']:>5}{r['max_instances']:>4}  {{{starts}}}:{size}"
        )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mig", help="inspect the MIG catalog")
    sub = parser.add_subparsers(dest="mig_command", metavar="COMMAND", required=True)
    prof = sub.add_parser("profiles", help="list the MIG profiles of a GPU model")
    prof.add_argument("model", help="GPU model or GFD product name, e.g. A100-40GB")
    prof.add_argument("--format", choices=("table", "json"), default="table")
    prof.set_defaults(func=_profiles)
