"""Every benchmark runs to the end at its smoke size, so that a broken benchmark fails CI.

Each ``bench_*.py`` is run as ``make bench`` runs it (a script, its own process) with
``--smoke``, from a scratch directory and without ``PYTHONPATH``: it must find its helpers by
itself. The test checks the exit status and that the goals are printed as target lines; it does
not judge the figures (at smoke size on a shared machine they mean nothing).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BENCHES = sorted(HERE.glob("bench_*.py"))
TARGET_LINE = re.compile(r"^target (\S+): (.+) \((.+)\) (met|NOT MET)$")
EXPECTED_TARGETS = {
    "bench_admission": {"admission-rebuild", "admission-live", "admission-steady"},
    "bench_capacity": {"capacity-full", "capacity-incremental"},
    "bench_planner": {"planner-slowest", "planner-proven"},
    "bench_devcluster_pods": {"devcluster-pods"},
    "bench_devcluster_watch": {"devcluster-watch-p99"},
    "bench_ldap_login": {"ldap-login-p95", "ldap-login-lag-p99"},
    "bench_spawn_burst": {"spawn-burst-hub-side-p95"},
    "bench_class_start": {
        "cpu-per-student",
        "login-p95-at-once",
        "login-p95-spread",
        "login-p95-hubtraf",
        "burst-lag-p99",
        "spread-spawn-p95",
        "spread-lag-p99",
        "hubtraf-errors",
        "hubtraf-login-p95",
    },
}


def run_smoke(bench: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(bench), "--smoke"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )


def test_every_benchmark_is_known() -> None:
    assert {b.stem for b in BENCHES} == set(EXPECTED_TARGETS)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("bench", BENCHES, ids=[b.stem for b in BENCHES])
def test_benchmark_runs_at_smoke_size(bench: Path, tmp_path: Path) -> None:
    proc = run_smoke(bench, tmp_path)
    output = f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, output
    assert "Traceback" not in proc.stderr, output
    targets = [line for line in proc.stdout.splitlines() if line.startswith("target ")]
    malformed = [line for line in targets if not TARGET_LINE.match(line)]
    assert not malformed, output
    names = {m.group(1) for line in targets if (m := TARGET_LINE.match(line))}
    assert EXPECTED_TARGETS[bench.stem] <= names, output
    if bench.stem == "bench_class_start":
        # the side-by-side table, its ratios and both outcomes beyond the slices
        for needle in ("LabHub/stock", "LabHub/floor", "hub-side spawn p95", "loop lag p99"):
            assert needle in proc.stdout, output
        assert "told their place in the queue" in proc.stdout, output
        assert "pods Pending" in proc.stdout, output
