"""The backup job's objects, without a cluster: the VolumeSnapshot it creates and how it reads
snapshots back."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from k8s_schemas import errors

from hub_ext.core.retention import RetentionPolicy
from hub_ext.services.backup import (
    MANAGED_SELECTOR,
    BackupConfig,
    main,
    snapshot_from_object,
    volume_snapshot_manifest,
)

NOW = datetime(2026, 1, 10, 1, 30, tzinfo=UTC)


def _config(snapshot_class: str | None = "ceph-rbd-snapshots") -> BackupConfig:
    return BackupConfig(
        namespace="labhub", policy=RetentionPolicy(7, 4), snapshot_class=snapshot_class
    )


@pytest.mark.parametrize("snapshot_class", ["ceph-rbd-snapshots", None])
def test_manifest_is_a_valid_volume_snapshot(snapshot_class: str | None) -> None:
    body = volume_snapshot_manifest("claim-alice", _config(snapshot_class), NOW)
    assert errors(body, "1.35") == []
    assert body["metadata"]["name"] == "claim-alice-20260110"
    assert body["spec"]["source"] == {"persistentVolumeClaimName": "claim-alice"}
    assert ("volumeSnapshotClassName" in body["spec"]) is (snapshot_class is not None)
    key, value = MANAGED_SELECTOR.split("=")
    assert body["metadata"]["labels"][key] == value


def test_reading_back_a_snapshot() -> None:
    body = volume_snapshot_manifest("claim-alice", _config(), NOW)
    assert snapshot_from_object(body).usable is None  # type: ignore[union-attr]
    body["status"] = {"readyToUse": True}
    parsed = snapshot_from_object(body)
    assert parsed is not None
    assert (parsed.volume, parsed.taken_at, parsed.usable) == ("claim-alice", NOW, True)
    body["status"] = {"readyToUse": False, "error": {"message": "csi failed"}}
    assert snapshot_from_object(body).usable is False  # type: ignore[union-attr]


def test_snapshot_without_our_annotations_uses_creation_time_and_source() -> None:
    obj = {
        "metadata": {"name": "manual", "creationTimestamp": "2026-01-09T10:00:00Z"},
        "spec": {"source": {"persistentVolumeClaimName": "claim-bob"}},
    }
    parsed = snapshot_from_object(obj)
    assert parsed is not None
    assert parsed.volume == "claim-bob"
    assert parsed.taken_at == datetime(2026, 1, 9, 10, tzinfo=UTC)
    assert snapshot_from_object({"metadata": {"name": "x"}, "spec": {}}) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--namespace", "labhub", "--time-zone", "Mars/Olympus"], "unknown --time-zone"),
        (["--namespace", "labhub", "--keep-daily", "0"], "keep_daily must be at least 1"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_without_credentials_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--namespace", "labhub", "--kubeconfig", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no usable Kubernetes credentials" in err and "--kubeconfig" in err
    assert "Traceback" not in err


def test_cli_with_unreachable_api_server_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: labhub}}]\n"
        "current-context: x\n"
    )
    assert main(["--namespace", "labhub", "--kubeconfig", str(kubeconfig)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("labhub-backup: cannot list claims or snapshots in namespace labhub")
    assert "Traceback" not in err
