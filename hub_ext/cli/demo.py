"""``labhub demo``: run LabHub on this machine.

Starts a private OpenLDAP server with the reference lab's directory (50 students in the seminar
groups ml101-a and ml101-b, a lecturer and an admin), the development cluster (default: the
reference lab, two server rooms with 10x A100-40GB as 40 1g.10gb MIG slices; the students'
servers run as local processes) and JupyterHub with LabHub's LDAP login, course profiles and GPU
slice queue. Prints the URL and the logins; Ctrl-C stops everything. Homes, the directory and
the hub database are kept in the state directory for the next run (make demo-clean forgets them).

The development cluster runs servers without isolation: never expose the demo to other people.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run LabHub (OpenLDAP, emulated GPU cluster, JupyterHub) on this machine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the hub's URL (default 8000; 0: a free one)"
    )
    parser.add_argument(
        "--ip",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: only this machine can connect)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".state/demo"),
        help="directory for homes, the LDAP database and the hub database (default .state/demo)",
    )
    parser.add_argument(
        "--cluster",
        type=Path,
        default=None,
        metavar="FILE",
        help="development cluster file (YAML); default: the shipped reference lab",
    )
    parser.add_argument(
        "--idle-timeout",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="stop servers idle for this long (default 3600)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="start, check that the hub answers and a student can log in, then stop",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hub_ext.demo import DemoError, DemoOptions, run_demo

    if not 0 <= args.port <= 65535:
        print(
            f"labhub demo: error: --port {args.port}: use 1-65535, or 0 for a free port",
            file=sys.stderr,
        )
        return 2
    if args.idle_timeout < 60:
        print("labhub demo: error: --idle-timeout must be at least 60 seconds", file=sys.stderr)
        return 2
    options = DemoOptions(
        state_dir=args.state_dir,
        ip=args.ip,
        port=args.port,
        cluster_file=args.cluster,
        idle_timeout=args.idle_timeout,
        check=args.check,
    )
    try:
        return run_demo(options)
    except DemoError as exc:
        print(f"labhub demo: error: {exc}", file=sys.stderr)
        return 2 if "in use" in str(exc) or "already running" in str(exc) else 1
    except KeyboardInterrupt:
        return 130
