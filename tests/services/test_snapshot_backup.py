"""Off-site backups of per-claim homes through VolumeSnapshots, on the development cluster with
the real restic: the chart's worker pod backs up a temporary claim made from each snapshot."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi, SchedulingV1Api

from hub_ext.core.offsite import TAG_HOME
from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.devcluster.informer import api_client
from hub_ext.services.backup import main as backup_main
from hub_ext.services.offsite import restore_home
from hub_ext.services.restic import Restic, ResticSettings
from hub_ext.services.snapshot_homes import temporary_claim_manifest, worker_pod_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helm"))
from chart_render import ROOT, one, render

pytestmark = pytest.mark.slow
T = TypeVar("T")
PASSWORD = "correct horse battery staple"
NS = "labhub"
GROUP, VERSION = "snapshot.storage.k8s.io", "v1"
HOME_LABELS = {"component": "singleuser-storage"}


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    for _ in range(480):
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _chart(repo: Path) -> list[dict[str, Any]]:
    values = {
        "backup": {
            "restic": {"repository": str(repo), "homesSource": "snapshots", "credentialsSecret": ""}
        }
    }
    path = repo.parent / "snapshot-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render("restic-values.yaml", path)


def _worker_template(docs: list[dict[str, Any]], out: Path) -> Path:
    """The chart's worker pod, run with this checkout's Python (the devcluster pulls no image)."""
    template = json.loads(
        one(docs, "ConfigMap", "gpulab-labhub-backup-worker")["data"]["worker.json"]
    )
    container = template["spec"]["containers"][0]
    container["command"] = [sys.executable, "-m", "hub_ext.services.backup"]
    container["env"].append({"name": "PYTHONPATH", "value": str(ROOT)})
    # the test's repository directory lives under the host's /tmp, which the pod's /tmp
    # emptyDir would hide (a real repository is s3:, rest: or sftp:)
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != "/tmp"]
    out.write_text(json.dumps(template))
    return out


def _secret(password: str) -> dict[str, Any]:
    data = {"password": base64.b64encode(password.encode()).decode()}
    return {"metadata": {"name": "labhub-restic"}, "data": data}


async def test_homes_are_backed_up_from_their_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    docs = _chart(repo)
    template = _worker_template(docs, tmp_path / "worker.json")
    config = parse_cluster_config({
        "name": "backups",
        "nodes": [{"name": "room-a-core", "zone": "room-a", "cpu": 16, "memory": "64Gi",
                   "labels": {"labhub.io/role": "core"}}],
        "storageClasses": [{"name": "ceph-rbd", "default": True,
                            "provisioner": "rbd.csi.ceph.com"}],
    })  # fmt: skip
    cluster = DevCluster(config, tmp_path / "state", DevClusterOptions(heartbeat_seconds=0.5))
    async with cluster, api_client(cluster.api.url) as client:
        core, custom = CoreV1Api(client), CustomObjectsApi(client)
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        monkeypatch.setenv("RESTIC_PASSWORD", PASSWORD)
        await core.create_namespace({"metadata": {"name": NS}})
        priority = one(docs, "PriorityClass", "gpulab-labhub-core")
        await SchedulingV1Api(client).create_priority_class(priority)
        await core.create_namespaced_secret(NS, _secret(PASSWORD))
        homes = cluster.state_dir / "volumes" / NS
        for student in ("alice", "bob"):
            claim = {
                "metadata": {"name": f"claim-{student}", "labels": HOME_LABELS},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "ceph-rbd",
                         "resources": {"requests": {"storage": "10Gi"}}},
            }  # fmt: skip
            await core.create_namespaced_persistent_volume_claim(NS, claim)

            async def bound(name: str = f"claim-{student}") -> bool | None:
                found = await core.read_namespaced_persistent_volume_claim(name, NS)
                return True if found.status and found.status.phase == "Bound" else None

            await eventually(bound, f"claim-{student} to be bound")
            (homes / f"claim-{student}" / "notebooks").mkdir()
            (homes / f"claim-{student}" / "notebooks" / "lab1.ipynb").write_bytes(os.urandom(4096))
            (homes / f"claim-{student}" / "README.md").write_text(f"{student}'s notes\n")

        # the job's first step: today's snapshots (the init container of the chart's CronJob)
        snap_args = ["snapshot", f"--namespace={NS}", "--name-pattern=claim-*",
                     f"--kubeconfig={cluster.kubeconfig}"]  # fmt: skip
        assert await asyncio.to_thread(backup_main, snap_args) == 0

        async def snapshots_ready() -> list[dict[str, Any]] | None:
            found = await custom.list_namespaced_custom_object(
                GROUP, VERSION, NS, "volumesnapshots"
            )
            items = found["items"]
            ready = [s for s in items if (s.get("status") or {}).get("readyToUse") is True]
            return items if len(items) == 2 and len(ready) == 2 else None

        await eventually(snapshots_ready, "both snapshots to be ready")
        (homes / "claim-alice" / "late.txt").write_text("written after the snapshot\n")

        run_args = ["run", "--from-snapshots", f"--worker-template={template}",
                    f"--namespace={NS}", "--name-pattern=claim-*", "--initialize",
                    f"--repository={repo}", f"--cache-dir={tmp_path / 'cache'}",
                    "--worker-timeout=20"]  # fmt: skip
        rc = await asyncio.to_thread(backup_main, run_args)
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert "backed up alice:" in out.out and "backed up bob:" in out.out

        # nothing temporary is left: only the homes' claims, no pods
        claims = await core.list_namespaced_persistent_volume_claim(NS)
        assert sorted(c.metadata.name for c in claims.items) == ["claim-alice", "claim-bob"]
        assert (await core.list_namespaced_pod(NS)).items == []

        restic = Restic(ResticSettings(str(repo), cache_dir=tmp_path / "cache",
                                       env={"RESTIC_PASSWORD": PASSWORD}))  # fmt: skip
        backups = restic.snapshots((TAG_HOME,))
        assert sorted(s.student for s in backups) == ["alice", "bob"]
        assert all(s.paths == (f"/homes/claim-{s.student}",) for s in backups)
        restored_root = tmp_path / "restored"
        restored_root.mkdir()
        target, _, _ = restore_home(restic, restored_root, "alice", None, into="alice-restored",
                                    in_place=False)  # fmt: skip
        assert (target / "README.md").read_text() == "alice's notes\n"
        assert (target / "notebooks" / "lab1.ipynb").read_bytes() == (
            homes / "claim-alice" / "notebooks" / "lab1.ipynb"
        ).read_bytes()
        assert not (target / "late.txt").exists()  # written after the snapshot

        # the worker pods get a wrong password: each home fails by name, the run fails
        await core.replace_namespaced_secret("labhub-restic", NS, _secret("wrong"))
        rc = await asyncio.to_thread(backup_main, run_args)
        err = capsys.readouterr().err
        assert rc == 1
        for student in ("alice", "bob"):
            assert f"error: home of {student}: the backup pod claim-{student}-" in err, err
        assert "password" in err, err
        assert len(restic.snapshots((TAG_HOME,))) == 2  # nothing lost, nothing half-written
        claims = await core.list_namespaced_persistent_volume_claim(NS)
        assert sorted(c.metadata.name for c in claims.items) == ["claim-alice", "claim-bob"]


def test_the_worker_pod_mounts_the_temporary_claim_read_only(tmp_path: Path) -> None:
    docs = _chart(tmp_path / "repo")
    template = json.loads(
        one(docs, "ConfigMap", "gpulab-labhub-backup-worker")["data"]["worker.json"]
    )
    at = datetime(2026, 1, 19, 1, 30, tzinfo=UTC)
    pod = worker_pod_manifest(template, "claim-alice-20260119-backup", "alice", "claim-alice",
                              "claim-alice-20260119-backup", at)  # fmt: skip
    (container,) = pod["spec"]["containers"]
    assert container["args"][:4] == [
        "backup-home", "alice", "--path=/homes/claim-alice", "--at=2026-01-19T01:30:00+00:00"
    ]  # fmt: skip
    assert {"name": "home", "mountPath": "/homes/claim-alice", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert template["spec"]["containers"][0]["args"] == ["--cache-dir=/cache"]  # not changed
    home = {"metadata": {"name": "claim-alice"},
            "spec": {"storageClassName": "ceph-rbd", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "10Gi"}}}}  # fmt: skip
    snap = {"metadata": {"name": "claim-alice-20260119"}, "status": {"restoreSize": "10Gi"}}
    temp = temporary_claim_manifest(home, snap, "claim-alice-20260119-backup")
    assert temp["spec"]["dataSource"] == {
        "apiGroup": GROUP, "kind": "VolumeSnapshot", "name": "claim-alice-20260119"
    }  # fmt: skip
    assert temp["spec"]["storageClassName"] == "ceph-rbd"
    assert temp["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "labhub-backup"


def test_from_snapshots_needs_a_worker_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--from-snapshots", "--namespace=labhub", f"--repository={tmp_path}"]
    assert backup_main(args) == 2
    assert (
        "--from-snapshots needs --worker-template FILE and --namespace" in capsys.readouterr().err
    )
    (tmp_path / "worker.json").write_text("{not json")
    assert backup_main([*args, f"--worker-template={tmp_path / 'worker.json'}"]) == 2
    assert "cannot read the worker template" in capsys.readouterr().err
