"""The hub database in WAL mode: what use_sqlite_wal() sets on every new SQLite connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from hub_ext.hub import hubdb


@pytest.fixture
def listener() -> Iterator[None]:
    def reset() -> None:
        if event.contains(Engine, "connect", hubdb.sqlite_pragmas):
            event.remove(Engine, "connect", hubdb.sqlite_pragmas)
        hubdb._settings.clear()

    reset()  # a hub configuration loaded by an earlier test may have switched it on
    yield
    reset()


def pragmas(path: Path) -> tuple[str, int]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
            sync = conn.execute(text("PRAGMA synchronous")).scalar_one()
            return str(mode), int(sync)
    finally:
        engine.dispose()


def test_sqlite_databases_open_in_wal_mode(tmp_path: Path, listener: None) -> None:
    assert pragmas(tmp_path / "before.sqlite") == ("delete", 2)  # SQLite's defaults (FULL)
    hubdb.use_sqlite_wal()
    hubdb.use_sqlite_wal()  # once is enough; twice does no harm
    assert pragmas(tmp_path / "hub.sqlite") == ("wal", 1)  # NORMAL
    hubdb.use_sqlite_wal("full")
    assert pragmas(tmp_path / "hub.sqlite") == ("wal", 2)
    with pytest.raises(ValueError, match="synchronous must be one of"):
        hubdb.use_sqlite_wal("sometimes")
