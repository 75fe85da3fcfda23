"""The queue across a hub restart, against the real hub, proxy and slapd: 3 servers running
(the course's limit) and 4 students queued. After the restart the admin overview answers at
once with the queue, and every queued student keeps the position they had, whatever order they
press Start again in (the ones not back yet still count)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from lab_hub import LabHub, eventually, lab_hub

EXTRA = """
from hub_ext.hub.admin_view import handlers as _labhub_admin_handlers
c.JupyterHub.extra_handlers = _labhub_admin_handlers()
c.JupyterHub.load_roles[0]["scopes"].append("admin-ui")
c.LabKubeSpawner.admission_quotas = {"courses": {"ml-101": 3}}
"""
RUNNING = ["student13", "student14", "student15"]
QUEUED = ["student16", "student17", "student18", "student19"]


async def overview(hub: LabHub) -> tuple[int, Any]:
    assert hub.api is not None
    async with hub.api.get(f"{hub.url}/hub/labhub/api/overview") as resp:
        return resp.status, await resp.json(content_type=None)


async def queue_positions(hub: LabHub) -> dict[str, tuple[int, int]]:
    status, data = await overview(hub)
    assert status == 200, data
    assert data["admission"] is not None, data
    return {
        e["user"]: (e["position"], e["waiting"])
        for q in data["admission"]["queues"]
        for e in q["entries"]
    }


async def shown_position(hub: LabHub, user: str) -> tuple[int, int]:
    line = await hub.progress_line(user, "position", 60)
    found = re.search(r"position (\d+) of (\d+)", line)
    assert found, line
    return int(found.group(1)), int(found.group(2))


@pytest.mark.slow
async def test_queue_positions_and_overview_survive_a_hub_restart(tmp_path: Path) -> None:
    async with lab_hub(tmp_path, "e2e_profiles.provider", extra_config=EXTRA) as hub:
        await hub.login_all(RUNNING + QUEUED)
        for user in RUNNING:
            status, text = await hub.start(user)
            assert status in (201, 202), text
            await eventually(lambda u=user: hub.ready(u), 120, f"{user} ready")
        for user in QUEUED:
            status, text = await hub.start(user)
            assert status == 202, text
            await eventually(lambda u=user: _queued(hub, u), 30, f"{user} queued")

        async def four_listed() -> bool:
            return len(await queue_positions(hub)) == 4

        await eventually(four_listed, 30, "4 students in the overview's queue")
        before = await queue_positions(hub)
        assert sorted(p for p, _ in before.values()) == [1, 2, 3, 4]
        assert {w for _, w in before.values()} == {4}
        for user in QUEUED:
            assert await shown_position(hub, user) == before[user]

        await hub.stop_hub()
        await hub.start_hub()

        # the overview answers right away, with the running servers and the whole queue
        async def listed() -> dict[str, tuple[int, int]] | None:
            positions = await queue_positions(hub)
            return positions if len(positions) == 4 else None

        after = await eventually(listed, 10, "the queue in the overview after the restart")
        assert after == before
        status, data = await overview(hub)
        holders = {h["user"] for n in data["admission"]["nodes"] for h in n["holders"]}
        assert holders == set(RUNNING)
        for user in RUNNING:
            assert await hub.ready(user), f"{user} lost its server in the restart"

        # back in another order: each sees the place they had, counting those not back yet
        for user in ["student19", "student17", "student16", "student18"]:
            status, text = await hub.start(user)
            assert status == 202, (user, text)
            assert await shown_position(hub, user) == before[user], user
        assert await queue_positions(hub) == before
        assert len(await hub.gated()) == 4


async def _queued(hub: LabHub, user: str) -> bool:
    return f"jupyter-{user}" in await hub.gated()
