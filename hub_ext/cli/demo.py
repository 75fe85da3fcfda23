"""``labhub demo``: show LabHub working on this machine.

Today the demo plans the reference lab's GPUs: 10x A100-40GB for two seminar groups of 25 students
who each need at least 8 GiB of GPU memory. It prints the plan that ``labhub plan`` computes, so
that a newcomer sees the MIG planner's answer (and why the reference lab needs more GPUs) without
any cluster.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the LabHub demo on this machine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hub_ext.cli.plan import reference_lab_report

    print(reference_lab_report())
    return 0
