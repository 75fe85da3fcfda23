"""The off-site backup's metrics: written by a real restic run, exported by the hub, alerted on by
Prometheus' own rule engine (promtool) after 26 hours without a good backup."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub_ext.hub.metrics import register_backup_status
from hub_ext.services.offsite import OffsiteConfig, run_offsite_backup
from hub_ext.services.restic import Restic, ResticSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helm"))
from chart_render import find, render


def _exported(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_hub_exports_what_the_last_run_wrote(tmp_path: Path) -> None:
    home = tmp_path / "homes" / "claim-alice"
    home.mkdir(parents=True)
    (home / "notes.txt").write_text("hello\n")
    metrics = tmp_path / "status" / "labhub_backup.prom"
    registry = CollectorRegistry()
    register_backup_status(metrics, registry)
    assert _exported(registry) == {}  # no run yet: nothing, so absent() alerts

    restic = Restic(
        ResticSettings(
            str(tmp_path / "repo"), cache_dir=tmp_path / "cache", env={"RESTIC_PASSWORD": "pw"}
        )
    )
    cfg = OffsiteConfig(homes_root=tmp_path / "homes", initialize=True, metrics_file=metrics)
    when = datetime(2026, 1, 19, 1, 30, tzinfo=UTC)
    report = run_offsite_backup(restic, cfg, lambda: when)
    exported = _exported(registry)
    assert exported["labhub_backup_last_run_success"] == 1
    assert exported["labhub_backup_last_success_timestamp_seconds"] == when.timestamp()
    assert exported["labhub_backup_added_bytes"] == report.outcome.bytes_added > 0
    assert "labhub_backup_duration_seconds" in exported


def test_the_stale_backup_alert_fires_after_26_hours(tmp_path: Path) -> None:
    (rule_doc,) = find(render("restic-values.yaml"), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_doc["spec"]["groups"]}))
    firing = {
        "exp_labels": {"severity": "critical"},
        "exp_annotations": next(
            r["annotations"]
            for g in rule_doc["spec"]["groups"]
            for r in g["rules"]
            if r.get("alert") == "LabHubOffsiteBackupStale"
        ),
    }
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "5m",
        "tests": [
            {
                "interval": "10m",
                # the last good backup ended at time 0 and no later run succeeded
                "input_series": [
                    {
                        "series": "labhub_backup_last_success_timestamp_seconds"
                        '{namespace="labhub"}',
                        "values": "0+0x200",
                    },
                    {
                        "series": 'labhub_backup_last_run_success{namespace="labhub"}',
                        "values": "1+0x200",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "25h", "alertname": "LabHubOffsiteBackupStale", "exp_alerts": []},
                    {
                        "eval_time": "27h",
                        "alertname": "LabHubOffsiteBackupStale",
                        "exp_alerts": [firing],
                    },
                    {
                        "eval_time": "27h",
                        "alertname": "LabHubOffsiteBackupFailing",
                        "exp_alerts": [],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        ["promtool", "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
