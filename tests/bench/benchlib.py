"""What the benchmarks share: import paths, the smoke size, percentiles and target lines.

Every ``bench_*.py`` imports this module first (``import benchlib``; the script's own folder is
on ``sys.path`` when Python runs it). Importing it puts the repository root and the test helper
folders on ``sys.path`` and on ``PYTHONPATH``, so that a benchmark runs the same from any
directory and with any environment, and the hubs it starts import this checkout's ``hub_ext``.

Each benchmark accepts ``--smoke``: the same code at a size of seconds, which
``tests/bench/test_bench_smoke.py`` runs in ``make test``; ``make bench`` runs the full sizes.
Goals are printed as ``target <name>: <value> (<goal>) met`` or ``... NOT MET``; a missed goal
does not change the exit status (the figures are the result), a crash does.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
HELPER_DIRS = (ROOT, TESTS, TESTS / "ldap", TESTS / "hub" / "spawner", TESTS / "bench")
VENV_BIN = Path(sys.executable).parent


def _setup_paths() -> None:
    for path in reversed(HELPER_DIRS):
        if str(path) in sys.path:
            sys.path.remove(str(path))
        sys.path.insert(0, str(path))
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in inherited if p != str(ROOT)]
    )
    # hubs and proxies started by a benchmark find this virtualenv's tools and the proxy
    extra = [str(VENV_BIN), str(ROOT / ".tools" / "bin"), str(ROOT / "node_modules" / ".bin")]
    os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "/usr/bin:/bin")])


_setup_paths()


def arguments(doc: str | None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse the command line: ``--smoke`` plus whatever ``parser`` already declares."""
    parser = parser or argparse.ArgumentParser()
    parser.description = (doc or "").strip().split("\n")[0]
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run at smoke size (seconds): checks that the benchmark works, not how fast",
    )
    return parser.parse_args()


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def target(name: str, value: str, goal: str, ok: bool) -> bool:
    """Print one goal as ``target <name>: <value> (<goal>) met`` or ``... NOT MET``."""
    print(f"target {name}: {value} ({goal}) {'met' if ok else 'NOT MET'}", flush=True)
    return ok


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN where ``b`` is zero or either is NaN."""
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.nan
    return a / b


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_note() -> str:
    """The machine's load while a benchmark runs, for the printed figures."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.1f} (1 min) {five:.1f} (5 min)"
