"""Shared test configuration.

Every asynchronous test is checked for leaked asyncio tasks: a task that a test started and did
not finish or cancel fails the test (the way kopf's test-suite does), because in the hub such a
task is a watcher or timer that nobody owns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio


@pytest_asyncio.fixture
async def _no_leaked_asyncio_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:
        leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not leaked or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    for task in leaked:
        task.cancel()
    if leaked:
        pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {leaked!r}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("asyncio") is not None and hasattr(item, "fixturenames"):
            item.fixturenames.insert(0, "_no_leaked_asyncio_tasks")
