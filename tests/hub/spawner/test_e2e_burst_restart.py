"""The hub restarts in the middle of a class-start burst of 50 students on the reference lab.

After the restart: servers that were running keep their pods, no slice is booked twice, queued
students who press Start again keep their place (whatever order they press in), and the
first of them starts by itself when a slice frees.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from lab_hub import LabHub, lab_hub
from support import eventually

STUDENTS = [f"student{i:02d}" for i in range(1, 51)]


def slices_per_node(pods: list[Any]) -> Counter[str]:
    return Counter(p.spec.node_name for p in pods if p.spec.node_name)


async def enqueued(hub: LabHub) -> dict[str, str]:
    """Queued pods by name with the time they joined the queue."""
    return {
        p.metadata.name: p.metadata.annotations["labhub.io/enqueued-at"]
        for p in await hub.pods()
        if p.spec.scheduling_gates and not p.metadata.deletion_timestamp
    }


@pytest.mark.slow
async def test_hub_restart_during_a_burst_of_fifty(tmp_path: Path) -> None:
    async with lab_hub(tmp_path, "e2e_profiles.provider") as hub:
        await hub.login_all(STUDENTS)
        burst = [asyncio.create_task(hub.start(u)) for u in STUDENTS]

        async def all_asked() -> bool:
            return len(await hub.gated()) == 10 and len(await hub.holding()) == 40

        try:
            await eventually(all_asked, 90, "40 admitted and 10 queued")
        finally:
            for task in burst:
                task.cancel()
            await asyncio.gather(*burst, return_exceptions=True)
        queue_before = await enqueued(hub)
        ready_before = [u for u in STUDENTS if await hub.ready(u)]
        uids = {p.metadata.name: p.metadata.uid for p in await hub.holding()}

        await hub.stop_hub()
        await hub.start_hub()

        # running servers are kept with their pods
        for user in ready_before:
            assert await hub.ready(user), f"{user} lost its server in the restart"
        holding = await hub.holding()
        for user in ready_before:
            pod = next(p for p in holding if p.metadata.name == f"jupyter-{user}")
            assert pod.metadata.uid == uids[pod.metadata.name]
        # everybody else presses Start again, the queued ones in reverse queue order
        order = sorted(queue_before, key=lambda name: queue_before[name], reverse=True)
        again = [u for u in STUDENTS if u not in ready_before]
        again.sort(key=lambda u: order.index(f"jupyter-{u}") if f"jupyter-{u}" in order else -1)
        presses = []
        for user in again:
            presses.append(asyncio.create_task(hub.start(user)))
            await asyncio.sleep(0.05)
        results = dict(zip(again, await asyncio.gather(*presses), strict=True))
        for user, (status, text) in results.items():
            if f"jupyter-{user}" in queue_before:
                assert status == 202, (user, text)
            else:  # a start the hub resumed by itself after the restart
                assert status in (201, 202) or "is already running" in text, (user, text)

        async def settled() -> bool:
            ready = await asyncio.gather(*(hub.ready(u) for u in STUDENTS))
            return sum(ready) == 40 and len(await hub.gated()) == 10

        await eventually(settled, 120, "40 servers ready and 10 queued after the restart")
        holding = await hub.holding()
        assert len(holding) == 40
        assert len({p.metadata.name for p in holding}) == 40
        for node, used in slices_per_node(holding).items():
            assert used <= 4 * (3 if node.endswith("-1") else 2), f"{node} booked twice"
        # the queued kept their place: same pods, same times
        assert await enqueued(hub) == queue_before
        first = min(queue_before, key=lambda name: queue_before[name])
        user = first.removeprefix("jupyter-")
        line = await hub.progress_line(user, "position")
        assert "position 1 of 10" in line

        # a slice frees: the first in line (not the first to press Start again) gets it
        await hub.stop(ready_before[0] if ready_before else "student01")
        await eventually(lambda: hub.ready(user), 60, f"{user} admitted after a stop")
        assert len(await hub.gated()) == 9
        assert len(await hub.holding()) == 40
