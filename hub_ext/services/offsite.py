"""The off-site backup: every home and the hub database into a restic repository in the other room.

``labhub-backup run`` backs up each home directory under ``--homes-root`` (``claim-<student>``) as
its own snapshot (tags ``labhub-home`` and ``student=<name>``), then the hub database (SQLite's
online backup API, or ``pg_dump`` for PostgreSQL; tag ``labhub-hubdb``), then applies the
daily/weekly/monthly retention with ``restic forget --prune`` and, when it is due, ``restic
check``. It writes its metrics (Prometheus text format) to ``--metrics-file`` and exits non-zero
when anything failed.

``labhub-backup restore STUDENT [--at TIME]`` restores a home into a new directory (a new claim)
or, with ``--in-place``, over the current home; the hub is asked first and an in-place restore
is refused while the student's server runs. Every restore is written into a staging directory
first and only moved into place once restic finished, so a failed restore changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub_ext.core.offsite import (
    TAG_HOME,
    TAG_HUBDB,
    BackupSummary,
    OffsiteError,
    ResticRetention,
    ResticSnapshot,
    RunOutcome,
    check_due,
    home_names,
    metrics_text,
    pick_snapshot,
    read_metric,
    student_tag,
)
from hub_ext.services.restic import Restic, ResticError

log = logging.getLogger("labhub.backup")

HUBDB_SQLITE_NAME = "jupyterhub.sqlite"
HUBDB_PG_NAME = "jupyterhub.pgdump"


@dataclass(frozen=True)
class OffsiteConfig:
    """What one ``labhub-backup run`` does."""

    homes_root: Path | None
    home_prefix: str = "claim-"
    hub_db_url: str | None = None
    retention: ResticRetention = field(default_factory=ResticRetention)
    check_every: timedelta = timedelta(days=7)
    initialize: bool = False
    metrics_file: Path | None = None


@dataclass
class OffsiteReport:
    """What one run did."""

    outcome: RunOutcome
    added: dict[str, int]
    errors: list[str]
    summaries: dict[str, BackupSummary] = field(default_factory=dict)


def _previous(metrics_file: Path | None, name: str) -> datetime | None:
    if metrics_file is None or not metrics_file.exists():
        return None
    value = read_metric(metrics_file.read_text(), name)
    return None if value is None else datetime.fromtimestamp(value, UTC)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dump_hub_db(url: str, out_dir: Path) -> Path:
    """A consistent copy of the hub database in ``out_dir`` (SQLite backup API or pg_dump)."""
    if url.startswith("sqlite:///") or "://" not in url:
        source = Path(url.removeprefix("sqlite:///")) if "://" in url else Path(url)
        if not source.is_file():
            raise OffsiteError(
                f"the hub database {source} does not exist; check --hub-db (the hub's db_url)"
            )
        target = out_dir / HUBDB_SQLITE_NAME
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return target
    if url.startswith(("postgresql", "postgres")):
        target = out_dir / HUBDB_PG_NAME
        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        done = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--dbname={dsn}"],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise OffsiteError(
                f"pg_dump of the hub database failed: {done.stderr.decode(errors='replace')}"
            )
        return target
    raise OffsiteError(f"the hub database URL {url!r} is neither sqlite:/// nor postgresql://")


def run_offsite_backup(
    restic: Restic, cfg: OffsiteConfig, clock: Callable[[], datetime]
) -> OffsiteReport:
    """Back up every home and the hub database; errors are collected, never half-kept."""
    started = clock()
    last_success = _previous(cfg.metrics_file, "labhub_backup_last_success_timestamp_seconds")
    last_check = _previous(cfg.metrics_file, "labhub_backup_last_check_timestamp_seconds")
    added: dict[str, int] = {}
    summaries: dict[str, BackupSummary] = {}
    errors: list[str] = []
    homes_ok = homes_failed = 0
    hubdb_ok: bool | None = None
    checked = False
    try:
        restic.open(initialize=cfg.initialize)
    except ResticError as exc:
        errors.append(str(exc))
    else:
        if cfg.homes_root is not None:
            if not cfg.homes_root.is_dir():
                errors.append(f"the homes directory {cfg.homes_root} does not exist")
                homes = {}
            else:
                entries = [p.name for p in cfg.homes_root.iterdir() if p.is_dir()]
                homes = home_names(entries, cfg.home_prefix)
            for entry, student in homes.items():
                try:
                    summary = restic.backup_path(
                        cfg.homes_root / entry, (TAG_HOME, student_tag(student)), at=started
                    )
                except (ResticError, OffsiteError) as exc:
                    homes_failed += 1
                    errors.append(f"home of {student}: {exc}")
                    continue
                homes_ok += 1
                added[student] = summary.data_added
                summaries[student] = summary
                log.info(
                    "home of %s: snapshot %s, %d new and %d changed files, %d bytes added",
                    student,
                    summary.snapshot_id,
                    summary.files_new,
                    summary.files_changed,
                    summary.data_added,
                )
        if cfg.hub_db_url:
            hubdb_ok = _backup_hub_db(restic, cfg.hub_db_url, started, added, errors)
        if not errors:
            try:
                restic.forget(cfg.retention)
                if check_due(last_check, started, cfg.check_every):
                    restic.check()
                    checked = True
                    last_check = clock()
            except ResticError as exc:
                errors.append(str(exc))
    finished = clock()
    ok = not errors
    outcome = RunOutcome(
        started=started,
        finished=finished,
        ok=ok,
        bytes_added=sum(added.values()),
        homes_backed_up=homes_ok,
        homes_failed=homes_failed,
        hubdb_ok=hubdb_ok,
        checked=checked,
        last_success=finished if ok else last_success,
        last_check=last_check,
    )
    if cfg.metrics_file is not None:
        write_atomically(cfg.metrics_file, metrics_text(outcome))
    return OffsiteReport(outcome=outcome, added=added, errors=errors, summaries=summaries)


def _backup_hub_db(
    restic: Restic, url: str, at: datetime, added: dict[str, int], errors: list[str]
) -> bool:
    with tempfile.TemporaryDirectory(prefix="labhub-hubdb-") as tmp:
        try:
            dump = dump_hub_db(url, Path(tmp))
            with dump.open("rb") as stream:
                summary = restic.backup_stream(stream, dump.name, (TAG_HUBDB,), at=at)
        except (OffsiteError, ResticError, sqlite3.Error, OSError) as exc:
            errors.append(f"hub database: {exc}")
            return False
    added["hub database"] = summary.data_added
    log.info("hub database: snapshot %s, %d bytes added", summary.snapshot_id, summary.data_added)
    return True


def _staged_tree(staging: Path, snapshot: ResticSnapshot) -> Path:
    """Where restic put the backed-up directory inside ``staging``."""
    if len(snapshot.paths) != 1:
        raise OffsiteError(f"snapshot {snapshot.id[:8]} holds {len(snapshot.paths)} paths, not 1")
    tree = staging / snapshot.paths[0].lstrip("/")
    if not tree.is_dir():
        raise OffsiteError(f"snapshot {snapshot.id[:8]} restored no directory {snapshot.paths[0]}")
    return tree


def restore_home(
    restic: Restic,
    homes_root: Path,
    student: str,
    at: datetime | None,
    *,
    into: str | None,
    in_place: bool,
    home_prefix: str = "claim-",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[Path, ResticSnapshot, Path | None]:
    """Restore ``student``'s home as of ``at``.

    Returns the restored directory, the snapshot used, and (in place) where the home as it was
    before the restore was kept.
    """
    if in_place == (into is not None):
        raise OffsiteError("give either --into NEW_CLAIM or --in-place")
    snapshot = pick_snapshot(restic.snapshots((TAG_HOME, student_tag(student))), student, at)
    home = homes_root / f"{home_prefix}{student}"
    target = home if in_place else homes_root / str(into)
    if not in_place and target.exists():
        raise OffsiteError(f"{target} exists already; choose another --into name")
    if in_place and not home.is_dir():
        raise OffsiteError(f"{student} has no home at {home}; restore --into a new claim instead")
    stamp = clock().strftime("%Y%m%d%H%M%S")
    staging = Path(tempfile.mkdtemp(prefix=f".restore-{student}-", dir=homes_root))
    try:
        restic.restore(snapshot, staging)
        tree = _staged_tree(staging, snapshot)
        kept: Path | None = None
        if in_place:
            kept = homes_root / f".before-restore-{student}-{stamp}"
            os.rename(home, kept)
        try:
            os.rename(tree, target)
        except OSError:
            if kept is not None:
                os.rename(kept, home)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, snapshot, kept


def restore_hub_db(restic: Restic, target: Path, at: datetime | None) -> ResticSnapshot:
    """Write the hub database as of ``at`` to ``target`` (which must not exist yet)."""
    if target.exists():
        raise OffsiteError(f"{target} exists; restore to a new path, then swap it in")
    snapshots = restic.snapshots((TAG_HUBDB,))
    chosen = [s for s in snapshots if at is None or s.time <= at]
    if not chosen:
        raise OffsiteError("the repository holds no hub database backup at or before that time")
    snapshot = chosen[-1]
    name = Path(snapshot.paths[0]).name if snapshot.paths else HUBDB_SQLITE_NAME
    tmp = target.with_name(f".{target.name}.partial")
    try:
        with tmp.open("wb") as out:
            restic.dump(snapshot, name, out)
        if name == HUBDB_SQLITE_NAME:
            db = sqlite3.connect(tmp)
            try:
                result = db.execute("PRAGMA integrity_check").fetchone()
            finally:
                db.close()
            if result != ("ok",):
                raise OffsiteError(f"the restored hub database fails its integrity check: {result}")
        os.rename(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return snapshot
