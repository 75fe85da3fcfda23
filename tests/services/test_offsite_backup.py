"""The off-site backup with the real restic binary, into a repository in a plain directory."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import free_port

from hub_ext.core.offsite import TAG_HOME, TAG_HUBDB, ResticRetention, read_metric
from hub_ext.services.offsite import (
    OffsiteConfig,
    restore_home,
    restore_hub_db,
    run_offsite_backup,
)
from hub_ext.services.restic import Restic, ResticError, ResticSettings

PASSWORD = "correct horse battery staple"
STUDENTS = ("alice", "bob", "carol")
FIRST = datetime(2026, 1, 19, 1, 30, tzinfo=UTC)


def _restic(repo: Path, tmp: Path, password: str = PASSWORD) -> Restic:
    return Restic(
        ResticSettings(str(repo), cache_dir=tmp / "cache", env={"RESTIC_PASSWORD": password})
    )


def _clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def _fill_home(home: Path, seed: int) -> None:
    (home / "notebooks").mkdir(parents=True)
    (home / "notebooks" / "lab1.ipynb").write_bytes(os.urandom(96 * 1024))
    (home / "data.bin").write_bytes(os.urandom(300 * 1024))
    (home / ".bashrc").write_text(f"# student {seed}\nexport PS1='$ '\n")
    os.symlink("notebooks/lab1.ipynb", home / "latest.ipynb")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Path, Path, Restic]]:
    homes = tmp_path / "homes"
    for seed, student in enumerate(STUDENTS):
        _fill_home(homes / f"claim-{student}", seed)
    (homes / "hub-db-dir").mkdir()  # not a home: never backed up
    repo = tmp_path / "repo"
    yield homes, repo, _restic(repo, tmp_path)


def _config(homes: Path, tmp: Path, **kw: object) -> OffsiteConfig:
    base: dict[str, object] = {
        "homes_root": homes,
        "initialize": True,
        "metrics_file": tmp / "metrics" / "labhub_backup.prom",
    }
    base.update(kw)
    return OffsiteConfig(**base)  # type: ignore[arg-type]


def test_second_backup_adds_only_the_changed_file(
    lab: tuple[Path, Path, Restic], tmp_path: Path
) -> None:
    homes, _repo, restic = lab
    cfg = _config(homes, tmp_path)
    first = run_offsite_backup(restic, cfg, _clock(FIRST))
    assert first.errors == []
    assert sorted(first.summaries) == sorted(STUDENTS)
    for summary in first.summaries.values():
        assert summary.files_new == 3  # lab1.ipynb, data.bin, .bashrc (links are not files)
        assert summary.data_added >= 396 * 1024

    changed = os.urandom(64 * 1024)
    (homes / "claim-bob" / "notebooks" / "lab1.ipynb").write_bytes(changed)
    second = run_offsite_backup(restic, cfg, _clock(FIRST + timedelta(days=1)))
    assert second.errors == []
    bob = second.summaries["bob"]
    assert (bob.files_new, bob.files_changed, bob.files_unmodified) == (0, 1, 2)
    # one new data blob, the changed file; the rest is directory metadata (trees)
    assert bob.data_blobs == 1
    assert len(changed) <= bob.data_added < len(changed) + 16 * 1024
    for student in ("alice", "carol"):
        summary = second.summaries[student]
        assert (summary.files_changed, summary.files_new, summary.data_blobs) == (0, 0, 0)
        assert summary.data_added < 8 * 1024  # at most the trees of its parent directories

    metrics = (tmp_path / "metrics" / "labhub_backup.prom").read_text()
    assert read_metric(metrics, "labhub_backup_last_run_success") == 1
    added = sum(summary.data_added for summary in second.summaries.values())
    assert read_metric(metrics, "labhub_backup_added_bytes") == added
    assert (
        read_metric(metrics, "labhub_backup_last_success_timestamp_seconds")
        == (FIRST + timedelta(days=1)).timestamp()
    )
    assert read_metric(metrics, "labhub_backup_duration_seconds") is not None
    # the first run ran `restic check`; a day later it is not due yet
    assert first.outcome.checked and not second.outcome.checked


def test_restore_as_of_first_backup(lab: tuple[Path, Path, Restic], tmp_path: Path) -> None:
    homes, _repo, restic = lab
    cfg = _config(homes, tmp_path)
    pristine = tmp_path / "pristine-bob"
    subprocess.run(["cp", "-a", str(homes / "claim-bob"), str(pristine)], check=True)
    run_offsite_backup(restic, cfg, _clock(FIRST))
    (homes / "claim-bob" / "notebooks" / "lab1.ipynb").write_bytes(b"overwritten by mistake")
    (homes / "claim-bob" / "data.bin").unlink()
    run_offsite_backup(restic, cfg, _clock(FIRST + timedelta(days=1)))

    target, snapshot, kept = restore_home(
        restic,
        homes,
        "bob",
        FIRST + timedelta(hours=2),
        into="restore-bob-20260119",
        in_place=False,
    )
    assert snapshot.time == FIRST and kept is None
    assert target == homes / "restore-bob-20260119"
    _assert_same_tree(pristine, target)
    assert (target / "latest.ipynb").is_symlink()

    # in place: the current (broken) home is kept aside, the restored one takes its name
    target, _snapshot, kept = restore_home(restic, homes, "bob", FIRST, into=None, in_place=True)
    assert target == homes / "claim-bob"
    _assert_same_tree(pristine, target)
    assert kept is not None and (kept / "notebooks" / "lab1.ipynb").read_bytes() == (
        b"overwritten by mistake"
    )
    assert not [p for p in homes.iterdir() if p.name.startswith(".restore-")]


def _assert_same_tree(left: Path, right: Path) -> None:
    compare = filecmp.dircmp(left, right)
    stack = [compare]
    while stack:
        cmp = stack.pop()
        assert cmp.left_only == [] and cmp.right_only == [], (cmp.left, cmp.right)
        _match, mismatch, errors = filecmp.cmpfiles(
            cmp.left, cmp.right, cmp.common_files, shallow=False
        )
        assert mismatch == [] and errors == []
        stack.extend(cmp.subdirs.values())
    for path in left.rglob("*"):
        other = right / path.relative_to(left)
        assert path.lstat().st_mode == other.lstat().st_mode, path


def test_retention_keeps_the_configured_copies(tmp_path: Path) -> None:
    homes = tmp_path / "homes"
    _fill_home(homes / "claim-alice", 0)
    restic = _restic(tmp_path / "repo", tmp_path)
    retention = ResticRetention(keep_daily=2, keep_weekly=3, keep_monthly=2)
    cfg = _config(homes, tmp_path, retention=retention, check_every=timedelta(0))
    days = ["01-01", "01-15", "01-28", "01-31", "02-01", "02-04", "02-08", "02-09"]
    for day in days:
        when = datetime.fromisoformat(f"2026-{day}T01:30:00+00:00")
        (homes / "claim-alice" / "diary.txt").write_text(f"written on {day}\n")
        assert run_offsite_backup(restic, cfg, _clock(when)).errors == []
    kept = {f"{s.time:%m-%d}" for s in restic.snapshots((TAG_HOME, "student=alice"))}
    # daily: 02-09, 02-08; weekly: 02-09, 02-08, 02-01; monthly: 02-09, 01-31
    assert kept == {"01-31", "02-01", "02-08", "02-09"}


def test_wrong_password_fails_clearly_and_loses_nothing(
    lab: tuple[Path, Path, Restic], tmp_path: Path
) -> None:
    homes, repo, restic = lab
    cfg = _config(homes, tmp_path)
    assert run_offsite_backup(restic, cfg, _clock(FIRST)).errors == []
    before = sorted(s.id for s in restic.snapshots())
    files_before = sorted(p.relative_to(repo) for p in repo.rglob("*"))

    wrong = _restic(repo, tmp_path, password="not the password")
    report = run_offsite_backup(wrong, cfg, _clock(FIRST + timedelta(days=1)))
    assert not report.outcome.ok
    assert len(report.errors) == 1
    assert "wrong password" in report.errors[0]
    assert "backup.restic.passwordSecret" in report.errors[0]
    assert sorted(s.id for s in restic.snapshots()) == before
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == files_before
    metrics = (tmp_path / "metrics" / "labhub_backup.prom").read_text()
    assert read_metric(metrics, "labhub_backup_last_run_success") == 0
    # the last good backup is still the first one: the 26 h alert sees it age
    assert read_metric(metrics, "labhub_backup_last_success_timestamp_seconds") == (
        FIRST.timestamp()
    )
    with pytest.raises(ResticError, match="wrong password"):
        restore_home(wrong, homes, "bob", None, into="restore-bob", in_place=False)
    assert not (homes / "restore-bob").exists()


def _cli(*args: str, password: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RESTIC_PASSWORD": password, "RESTIC_CACHE_DIR": str(cwd / "cache")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [sys.executable, "-m", "hub_ext.services.backup", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_cli_exits_non_zero_with_the_reason(lab: tuple[Path, Path, Restic], tmp_path: Path) -> None:
    homes, repo, restic = lab
    ok = _cli(
        "run",
        f"--repository={repo}",
        f"--homes-root={homes}",
        "--initialize",
        password=PASSWORD,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "backed up bob:" in ok.stdout

    wrong = _cli(
        "run", f"--repository={repo}", f"--homes-root={homes}", password="nope", cwd=tmp_path
    )
    assert wrong.returncode == 1
    assert "wrong password" in wrong.stderr

    unreachable = f"rest:http://127.0.0.1:{free_port()}/"
    down = _cli(
        "run",
        f"--repository={unreachable}",
        f"--homes-root={homes}",
        password=PASSWORD,
        cwd=tmp_path,
    )
    assert down.returncode == 1
    assert "cannot be reached" in down.stderr

    listing = _cli("list", "bob", f"--repository={repo}", password=PASSWORD, cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout.strip().endswith("bob")
    missing = _cli(
        "restore",
        "dave",
        "--into=restore-dave",
        f"--repository={repo}",
        f"--homes-root={homes}",
        password=PASSWORD,
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert "no backup of dave's home" in missing.stderr
    assert len(restic.snapshots()) == 3


def test_hub_database_backup_restores_to_a_database_jupyterhub_opens(tmp_path: Path) -> None:
    from jupyterhub import orm

    source = tmp_path / "hub" / "jupyterhub.sqlite"
    source.parent.mkdir()
    session = orm.new_session_factory(f"sqlite:///{source}")()
    for name in ("alice", "bob"):
        session.add(orm.User(name=name))
    session.commit()
    restic = _restic(tmp_path / "repo", tmp_path)
    cfg = _config(None, tmp_path, hub_db_url=f"sqlite:///{source}")  # type: ignore[arg-type]
    report = run_offsite_backup(restic, cfg, _clock(FIRST))
    session.add(orm.User(name="carol"))  # after the backup: not in it
    session.commit()
    session.close()
    assert report.errors == [] and report.outcome.hubdb_ok is True
    assert [s.tags for s in restic.snapshots()] == [(TAG_HUBDB,)]

    restored = tmp_path / "restored" / "jupyterhub.sqlite"
    restored.parent.mkdir()
    restore_hub_db(restic, restored, None)
    reopened = orm.new_session_factory(f"sqlite:///{restored}")()
    try:
        assert sorted(u.name for u in reopened.query(orm.User)) == ["alice", "bob"]
    finally:
        reopened.close()
    with pytest.raises(ValueError, match="exists"):
        restore_hub_db(restic, restored, None)


async def test_the_job_keeps_its_metrics_in_the_status_configmap(tmp_path: Path) -> None:
    """What the chart runs: the previous run's times come from the ConfigMap, the new metrics
    go back into it (the hub mounts it)."""
    import asyncio

    from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

    from hub_ext.devcluster.cluster import DevCluster
    from hub_ext.devcluster.config import parse_cluster_config

    homes = tmp_path / "homes"
    _fill_home(homes / "claim-alice", 0)
    lab = parse_cluster_config(
        {"name": "backup", "nodes": [{"name": "n", "zone": "room-a", "cpu": 4, "memory": "8Gi"}]}
    )
    async with (
        DevCluster(lab, tmp_path / "cluster") as dev,
        ApiClient(configuration=Configuration(host=dev.api.url)) as api,
    ):
        core = CoreV1Api(api)
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": "gpulab-labhub-backup-status"}}
        )
        args = (
            "run",
            f"--repository={tmp_path / 'repo'}",
            f"--homes-root={homes}",
            "--initialize",
            "--namespace=default",
            f"--metrics-file={tmp_path / 'm.prom'}",
            "--status-configmap=gpulab-labhub-backup-status",
        )
        env = {
            **os.environ,
            "KUBECONFIG": str(dev.kubeconfig),
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }

        async def run() -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hub_ext.services.backup",
                *args,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(proc.communicate(), 300)
            return int(proc.returncode or 0), err.decode()

        code, err = await run()
        assert code == 0, err
        found = await core.read_namespaced_config_map("gpulab-labhub-backup-status", "default")
        first = found.data["labhub_backup.prom"]
        checked = read_metric(first, "labhub_backup_last_check_timestamp_seconds")
        assert read_metric(first, "labhub_backup_last_run_success") == 1 and checked
        (tmp_path / "m.prom").unlink()  # a new pod: only the ConfigMap remembers
        code, err = await run()
        assert code == 0, err
        found = await core.read_namespaced_config_map("gpulab-labhub-backup-status", "default")
        second = found.data["labhub_backup.prom"]
        # `restic check` ran in the first run only: it is due weekly
        assert read_metric(second, "labhub_backup_last_check_timestamp_seconds") == checked
        assert read_metric(second, "labhub_backup_last_success_timestamp_seconds") > checked
