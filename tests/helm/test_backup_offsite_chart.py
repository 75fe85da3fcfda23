"""The chart's off-site (restic) backup as rendered: job, secrets, RBAC, network, metrics, alert."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import find, one, render, render_error

VALUES = "restic-values.yaml"
JOB = "gpulab-labhub-backup"
STATUS = "gpulab-labhub-backup-status"


def _job_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cronjob = one(docs, "CronJob", JOB)
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_the_job_snapshots_first_then_backs_up_with_restic() -> None:
    spec = _job_spec(render(VALUES))
    assert [c["name"] for c in spec["initContainers"]] == ["backup"]
    assert "--snapshot-class=ceph-rbd-snapshots" in spec["initContainers"][0]["args"]
    (offsite,) = spec["containers"]
    args = offsite["args"]
    assert args[0] == "run"
    for expected in (
        "--homes-root=/homes",
        "--keep-daily=7",
        "--keep-weekly=5",
        "--keep-monthly=12",
        "--check-every-days=7",
        "--hub-db=sqlite:////srv/jupyterhub/jupyterhub.sqlite",
        f"--status-configmap={STATUS}",
    ):
        assert expected in args
    mounts = {m["name"]: m for m in offsite["volumeMounts"]}
    assert mounts["homes"]["mountPath"] == "/homes" and mounts["homes"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["homes"]["persistentVolumeClaim"]["claimName"] == "labhub-homes-share"
    assert volumes["hub-db"]["persistentVolumeClaim"]["claimName"] == "gpulab-labhub-hub-db"
    # the hub's SQLite volume is ReadWriteOnce: the job runs beside the hub
    term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"


def test_password_and_credentials_come_from_the_named_secrets() -> None:
    (offsite,) = _job_spec(render(VALUES))["containers"]
    env = {e["name"]: e for e in offsite["env"]}
    assert env["RESTIC_REPOSITORY"]["value"] == "rest:https://backup.room-b.example:8000/labhub/"
    assert env["RESTIC_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "labhub-restic",
        "key": "password",
    }
    assert "value" not in env["RESTIC_PASSWORD"]
    assert offsite["envFrom"] == [{"secretRef": {"name": "labhub-restic-rest"}}]


def test_the_job_may_patch_only_its_status_configmap_and_reach_the_repository() -> None:
    docs = render(VALUES)
    rules = one(docs, "Role", JOB)["rules"]
    configmaps = [r for r in rules if "configmaps" in r["resources"]]
    assert configmaps == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [STATUS],
            "verbs": ["get", "patch"],
        }
    ]
    assert "data" not in one(docs, "ConfigMap", STATUS)  # the job fills it, upgrades keep it
    egress = one(docs, "NetworkPolicy", JOB)["spec"]["egress"]
    assert {"port": 8000, "protocol": "TCP"} in egress[-1]["ports"]


def test_the_hub_exports_the_jobs_metrics_and_the_26h_alert_watches_them() -> None:
    docs = render(VALUES)
    hub = one(docs, "Deployment", "gpulab-labhub-hub")["spec"]["template"]["spec"]
    volume = next(v for v in hub["volumes"] if v["name"] == "backup-status")
    assert volume["configMap"] == {"name": STATUS, "optional": True}
    env = {e["name"]: e.get("value") for e in hub["containers"][0]["env"]}
    assert env["LABHUB_BACKUP_METRICS_FILE"].endswith("/backup-status/labhub_backup.prom")
    (rule_doc,) = find(docs, "PrometheusRule")
    rules = {r["alert"]: r for g in rule_doc["spec"]["groups"] for r in g["rules"] if "alert" in r}
    stale = rules["LabHubOffsiteBackupStale"]
    assert "labhub_backup_last_success_timestamp_seconds" in stale["expr"]
    assert "93600" in stale["expr"]  # 26 hours
    assert "LabHubOffsiteBackupFailing" in rules


def test_without_restic_the_job_is_todays_snapshot_job() -> None:
    docs = render("defaults-values.yaml")
    spec = _job_spec(docs)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["backup"]
    assert find(docs, "ConfigMap", STATUS) == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("backup.restic.enabled=true",), "needs backup.restic.repository"),
        (
            ("backup.restic.enabled=true", "backup.restic.repository=s3:https://s3.example/b"),
            "needs backup.restic.passwordSecret.name",
        ),
        (
            (
                "backup.restic.enabled=true",
                "backup.restic.repository=s3:https://s3.example/b",
                "backup.restic.passwordSecret.name=restic",
            ),
            "needs backup.restic.homesVolume",
        ),
        (("backup.restic.keepMonthly=-1",), "keepMonthly"),
    ],
)
def test_incomplete_restic_settings_are_refused_clearly(
    sets: tuple[str, ...], message: str
) -> None:
    assert message in render_error("defaults-values.yaml", sets=sets)
