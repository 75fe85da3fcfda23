"""The reference lab (40 ``1g.10gb`` slices) end to end with real OpenLDAP logins.

One student logs in over the login form, sees only their course, starts ml-101 from the spawn
form, reaches their real jupyterhub-singleuser through the proxy, writes a file, stops, starts
again and finds it. Then the lab fills up: a running lab session of ml101-b holds its seats for
its group, the 41st student is queued with a position and starts by itself when someone stops,
a student outside a course gets a 403 with a message, and the Prometheus metrics follow.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from lab_hub import LabHub, lab_hub
from support import eventually
from yarl import URL

SEATS = 16  # ml101-b's lab session holds 16 of the 40 slices
ML101_A = [f"student{i:02d}" for i in range(1, 26)]
ML101_B = [f"student{i:02d}" for i in range(26, 51)]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the hub's /hub/metrics page (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def metrics_page(hub: LabHub) -> str:
    assert hub.api is not None
    async with hub.api.get(f"{hub.url}/hub/metrics") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.text()


@pytest.mark.slow
async def test_reference_lab_with_ldap_logins(tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    provider = f"e2e_profiles.lab_provider({start.isoformat()!r}, 'ml101-b', {SEATS})"
    async with lab_hub(tmp_path, provider, real_servers=("student06",)) as hub:
        await _own_server(hub)
        await _refusals(hub)
        await _fill_the_lab(hub)
        stopped_in = await hub.stop_hub()
        assert stopped_in < 15, f"the hub took {stopped_in:.0f} s to shut down"
        assert "slice admission controller(s) stopped" in hub.log_text()


async def _own_server(hub: LabHub) -> None:
    browser = await hub.login("student06")
    try:
        async with browser.get(f"{hub.url}/hub/spawn") as resp:
            page = await resp.text()
        assert 'value="ml-101"' in page
        assert "cv-201" not in page and "intro-python" not in page
        assert "GPU slice 1g.10gb: 40 of 40 free" in page
        action = re.search(r'id="spawn_form"\s+action="([^"]+)"', page)
        assert action, page[:300]
        target = unescape(action.group(1))  # carries the _xsrf token as a query parameter
        async with browser.post(
            f"{hub.url}{target}", data={"profile": "ml-101"}, allow_redirects=False
        ) as resp:
            assert resp.status == 302, await resp.text()
        await eventually(lambda: hub.ready("student06"), 90, "student06 ready")
        # through the proxy with the browser's cookies (the single-user OAuth round trip)
        async with browser.get(f"{hub.url}/user/student06/lab") as resp:
            assert resp.status == 200, str(resp.url)
            assert str(resp.url) == f"{hub.url}/user/student06/lab"
        cookies = browser.cookie_jar.filter_cookies(URL(f"{hub.url}/user/student06/"))
        xsrf = cookies["_xsrf"].value if "_xsrf" in cookies else ""
        async with browser.get(
            f"{hub.url}/user/student06/api/status", headers={"X-XSRFToken": xsrf}
        ) as resp:
            assert resp.status == 200
            assert "started" in await resp.json()
    finally:
        await browser.close()
    assert hub.api is not None
    note = {"type": "file", "format": "text", "content": "gradient descent"}
    async with hub.api.put(f"{hub.url}/user/student06/api/contents/notes.txt", json=note) as r:
        assert r.status in (200, 201), await r.text()
    assert hub.core is not None
    pod = (await hub.core.read_namespaced_pod("jupyter-student06", "default")).to_dict()
    labels = pod["metadata"]["labels"]
    assert labels["labhub.io/course"] == "ml-101"
    assert labels["labhub.io/seminar-group"] == "ml101-a"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    await hub.stop("student06")
    assert await hub.gated() == []
    status, text = await hub.start("student06")
    assert status in (201, 202), text
    await eventually(lambda: hub.ready("student06"), 90, "student06 ready again")
    async with hub.api.get(f"{hub.url}/user/student06/api/contents/notes.txt") as resp:
        assert resp.status == 200
        assert (await resp.json())["content"] == "gradient descent"


async def _refusals(hub: LabHub) -> None:
    await hub.login_all(["student10", "student01"])
    status, text = await hub.start("student10", "cv-201")
    assert status == 403
    assert "needs membership in cv201" in text and "lecturer" in text
    # student01 is in cv201, but no node of the lab offers a 2g.10gb slice
    status, text = await hub.start("student01", "cv-201")
    assert status == 503
    assert "No node of this lab offers a 2g.10gb GPU slice" in text
    assert "1g.10gb" in text
    page = await metrics_page(hub)
    assert metric(page, "labhub_refusals_total", reason="not-allowed") >= 1
    assert metric(page, "labhub_refusals_total", reason="no-capacity") >= 1


async def _fill_the_lab(hub: LabHub) -> None:
    # ml101-a (student06 runs already) takes what is not held for ml101-b's lab session
    first = [u for u in ML101_A if u not in ("student06", "student25")]
    await hub.login_all([*first, "student25", *ML101_B[:17]])
    results = await asyncio.gather(*(hub.start(u) for u in first))
    assert all(s in (201, 202) for s, _ in results), results

    async def all_ready(users: list[str]) -> bool:
        states = await asyncio.gather(*(hub.ready(u) for u in users))
        return all(states)

    await eventually(lambda: all_ready(first), 120, "ml101-a servers ready")
    assert len(await hub.holding()) == 40 - SEATS

    # the 25th ml101-a student waits: the free slices are held for ml101-b's lab session
    status, _ = await hub.start("student25")
    assert status == 202
    line = await hub.progress_line("student25", "position")
    assert "position 1 of 1" in line and "reserved for seminar group ml101-b" in line
    page = await metrics_page(hub)
    assert metric(page, "labhub_reservations_active", course="ml-101") == 1
    assert metric(page, "labhub_queue_length", slice_type="1g.10gb", course="ml-101") == 1

    # ml101-b asked later but gets its group's seats first
    group_b = ML101_B[:SEATS]
    results = await asyncio.gather(*(hub.start(u) for u in group_b))
    assert all(s in (201, 202) for s, _ in results), results
    await eventually(lambda: all_ready(group_b), 120, "ml101-b servers ready")
    assert not await hub.ready("student25")
    assert len(await hub.holding()) == 40

    # the 41st server: student42 (in the lab session) is queued ahead of student25
    late = ML101_B[SEATS]
    status, _ = await hub.start(late)
    assert status == 202
    line = await hub.progress_line(late, "position")
    assert "Waiting for a 1g.10gb GPU slice: position 1 of 2" in line
    assert sorted(await hub.gated()) == sorted([f"jupyter-{late}", "jupyter-student25"])
    page = await metrics_page(hub)
    used = sum(
        metric(page, "labhub_slices_used", slice_type="1g.10gb", zone=z)
        for z in ("room-a", "room-b")
    )
    assert used == 40
    assert metric(page, "labhub_slices_free", slice_type="1g.10gb", zone="room-a") == 0
    assert metric(page, "labhub_queue_length", slice_type="1g.10gb", course="ml-101") == 2
    admitted = metric(page, "labhub_admissions_total", slice_type="1g.10gb", course="ml-101")
    assert admitted >= 41

    # somebody stops: the first in line starts by itself, nobody presses anything
    await hub.stop("student07")
    await eventually(lambda: hub.ready(late), 60, f"{late} admitted after student07 stopped")
    assert await hub.gated() == ["jupyter-student25"]
    assert len(await hub.holding()) == 40
    line = await hub.progress_line("student25", "position")
    assert "position 1 of 1" in line
    page = await metrics_page(hub)
    assert metric(page, "labhub_queue_length", slice_type="1g.10gb", course="ml-101") == 1
    waited = metric(
        page, "labhub_queue_wait_duration_seconds_count", slice_type="1g.10gb", outcome="admitted"
    )
    assert waited >= admitted + 1
