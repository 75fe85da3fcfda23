"""The hub's own SQLite database in write-ahead-log mode (for class-start bursts).

JupyterHub keeps users, groups, tokens, OAuth clients and server state in one database and
commits it several times for every login and every spawn, on its single event loop. In SQLite's
default rollback-journal mode each of those commits waits for the disk to flush (``fsync``) twice,
and nothing else on the hub runs meanwhile: with the database on a network block device (the
chart's ``sqlite-pvc`` on Ceph RBD) fifty students pressing Start together spend most of the
hub's time waiting for the disk.

:func:`use_sqlite_wal` switches every SQLite database the hub opens to write-ahead logging with
``synchronous=NORMAL``: a commit appends to the log without waiting for the disk, and the log is
flushed at checkpoints. A crash of the hub process loses nothing; a power loss of the node may
lose the last commits (never the database's consistency). Call it from ``jupyterhub_config.py``::

    from hub_ext.hub.hubdb import use_sqlite_wal
    use_sqlite_wal()

WAL needs a local file system or a block device (ext4 or xfs on RBD); it must not be used with
the database on NFS or CephFS. PostgreSQL databases are not touched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["sqlite_pragmas", "use_sqlite_wal"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_settings: dict[str, str] = {}


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """Set WAL mode (and the chosen ``synchronous`` level) on a new SQLite connection."""
    if not type(dbapi_connection).__module__.startswith("sqlite3") or not _settings:
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={_settings['synchronous']}")
    finally:
        cursor.close()


def use_sqlite_wal(synchronous: str = "NORMAL") -> None:
    """Open every SQLite database of this process in WAL mode with ``synchronous`` (NORMAL by
    default; FULL keeps the last commits across a power loss at the price of one flush per
    commit). Safe to call more than once; PostgreSQL and other databases are left alone."""
    level = synchronous.upper()
    if level not in _SYNCHRONOUS:
        choices = ", ".join(_SYNCHRONOUS)
        raise ValueError(f"synchronous must be one of {choices}, not {synchronous!r}")
    _settings["synchronous"] = level
    if not event.contains(Engine, "connect", sqlite_pragmas):
        event.listen(Engine, "connect", sqlite_pragmas)
