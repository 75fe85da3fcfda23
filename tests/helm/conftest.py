"""Chart tests load the hub's real configuration file, which switches every SQLite database of the
process to WAL mode (``hub.db.sqliteWal``); undo that after each test so other tests see SQLite's
defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _sqlite_defaults_after_test() -> Iterator[None]:
    yield
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from hub_ext.hub import hubdb

    hubdb._settings.clear()
    if event.contains(Engine, "connect", hubdb.sqlite_pragmas):
        event.remove(Engine, "connect", hubdb.sqlite_pragmas)
