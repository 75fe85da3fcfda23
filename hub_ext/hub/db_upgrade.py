"""A backup of the hub database before ``jupyterhub --upgrade-db`` migrates its schema.

A new JupyterHub version can bring a new database schema; the hub then refuses to start until
the schema is migrated (``--upgrade-db``, the chart value ``hub.db.upgrade``). The chart's hub
configuration calls :func:`backup_before_upgrade` first, and only when the schema is out of date:

- SQLite (``sqlite-pvc``): a consistent copy made with SQLite's online backup API (Python's
  ``sqlite3`` module, so no ``sqlite3`` binary is needed), which also holds what is still in the
  write-ahead log; JupyterHub's own file copy of the database would miss that.
- PostgreSQL: ``pg_dump --format=custom`` when ``pg_dump`` is installed in the hub image; when it
  is not, the hub logs that the operator must take a dump first (the upgrade guide says how).

SQLite backups are written beside the database, into ``backups/`` on the hub's volume, as
``jupyterhub-<revision>-<UTC time>.sqlite``; PostgreSQL dumps into ``dump_dir`` as
``jupyterhub-<revision>-<UTC time>.pgdump``. The hub never deletes them.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

from jupyterhub import orm
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["BackupError", "backup_before_upgrade", "backup_sqlite", "schema_revision"]

log = logging.getLogger("labhub.db_upgrade")


class BackupError(RuntimeError):
    """The pre-upgrade backup failed; the hub must not migrate the database."""


def schema_revision(db_url: str) -> str | None:
    """The database's alembic revision, or None for a new (empty) database."""
    engine = create_engine(db_url)
    try:
        if "alembic_version" not in inspect(engine).get_table_names():
            return None
        with engine.connect() as conn:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return str(row[0]) if row else None
    finally:
        engine.dispose()


def needs_upgrade(db_url: str) -> bool:
    """Whether JupyterHub would refuse this database without ``--upgrade-db``.

    False for a SQLite file that does not exist yet (a first start) and for a database that
    cannot be reached now: the hub itself then reports the connection error."""
    if db_url.startswith("sqlite:///") and not Path(db_url.split(":///", 1)[1]).is_file():
        return False
    try:
        engine = create_engine(db_url)
    except (SQLAlchemyError, ImportError) as exc:  # no driver for this URL in the image
        log.warning("hub.db.upgrade: cannot open %s (%s)", db_url.split(":")[0], exc)
        return False
    try:
        orm.check_db_revision(engine)
    except orm.DatabaseSchemaMismatch:
        return True
    except SQLAlchemyError as exc:
        log.warning("hub.db.upgrade: cannot check the database schema (%s)", exc)
        return False
    finally:
        engine.dispose()
    return False


def backup_sqlite(db_file: Path, target: Path) -> Path:
    """Copy ``db_file`` to ``target`` with SQLite's online backup (consistent, WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
    return target


def _backup_postgres(db_url: str, target: Path) -> Path | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        log.warning(
            "hub.db.upgrade: pg_dump is not installed in the hub image, so no backup was taken "
            "before the schema migration; take one with pg_dump before upgrading (see the "
            "upgrade guide)"
        )
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    url = db_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    result = subprocess.run(
        [pg_dump, "--format=custom", f"--file={target}", f"--dbname={url}"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(
            f"hub.db.upgrade: pg_dump failed ({result.stderr.strip()}); the database was not "
            "migrated. Fix the dump or take one by hand, then restart the hub"
        )
    return target


def backup_before_upgrade(db_url: str, now: datetime, dump_dir: Path) -> Path | None:
    """Back the hub database up if its schema is about to be migrated (SQLite into
    ``backups/`` beside the database file, PostgreSQL into ``dump_dir``).

    Returns the backup's path, or None when no migration is due (or no backup tool exists for
    PostgreSQL). Raises :class:`BackupError` when a backup was due and failed.
    """
    if not needs_upgrade(db_url):
        return None
    revision = schema_revision(db_url) or "none"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if db_url.startswith("sqlite:///"):
        db_file = Path(db_url.split(":///", 1)[1])
        target = db_file.parent / "backups" / f"jupyterhub-{revision}-{stamp}.sqlite"
        try:
            backup_sqlite(db_file, target)
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(
                f"hub.db.upgrade: backing up {db_file} to {target} failed ({exc}); the database "
                "was not migrated. Free space on the hub volume, then restart the hub"
            ) from None
        log.info("hub.db.upgrade: backed up %s (revision %s) to %s", db_file, revision, target)
        return target
    if db_url.startswith(("postgresql", "postgres")):
        target = dump_dir / f"jupyterhub-{revision}-{stamp}.pgdump"
        done = _backup_postgres(db_url, target)
        if done is not None:
            log.info("hub.db.upgrade: dumped the database (revision %s) to %s", revision, done)
        return done
    log.warning(
        "hub.db.upgrade: no backup method for %s; back it up yourself", db_url.split(":")[0]
    )
    return None
