"""A node of the lab goes NotReady under a running server, against the real hub, proxy and slapd:
the admin overview keeps showing the holder, marked NotReady; once the server's pod is evicted,
the student is told that the node was lost and the files are safe, not "not running"."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_hub import LabHub, eventually, lab_hub

from hub_ext.hub.spawner.node_lost import NODE_LOST

EXTRA = """
from hub_ext.hub.admin_view import handlers as _labhub_admin_handlers
c.JupyterHub.extra_handlers = _labhub_admin_handlers()
c.JupyterHub.load_roles[0]["scopes"].append("admin-ui")
c.LabKubeSpawner.poll_interval = 1
"""
USER = "student20"


async def node_rows(hub: LabHub, node: str) -> list[dict[str, object]]:
    assert hub.api is not None
    async with hub.api.get(f"{hub.url}/hub/labhub/api/overview") as resp:
        assert resp.status == 200
        data = await resp.json(content_type=None)
    return [r for r in data["admission"]["nodes"] if r["node"] == node]


@pytest.mark.slow
async def test_holder_on_a_lost_node_is_shown_and_the_student_told(tmp_path: Path) -> None:
    async with lab_hub(tmp_path, "e2e_profiles.provider", extra_config=EXTRA) as hub:
        browser = await hub.login(USER)
        try:
            status, text = await hub.start(USER)
            assert status in (201, 202), text
            await eventually(lambda: hub.ready(USER), 120, f"{USER} ready")
            assert hub.core is not None
            pod = await hub.core.read_namespaced_pod(f"jupyter-{USER}", "default")
            node = pod.spec.node_name

            await hub.cluster.set_node_ready(node, False, "kubelet stopped posting status")

            async def shown_not_ready() -> bool:
                rows = await node_rows(hub, node)
                holders = [h["user"] for r in rows for h in r["holders"]]  # type: ignore[attr-defined]
                return holders == [USER] and all(r["ready"] is False for r in rows)

            await eventually(shown_not_ready, 30, "the holder shown on its NotReady node")

            # the taint manager's eviction: the pod is deleted
            await hub.core.delete_namespaced_pod(f"jupyter-{USER}", "default")

            async def stopped() -> bool:
                return await hub.server(USER) is None

            await eventually(stopped, 60, "the hub noticing the server is gone")
            headers = {"Accept": "application/json"}
            async with browser.get(f"{hub.url}/user/{USER}/api/status", headers=headers) as r:
                assert r.status == 424, await r.text()
                assert (await r.json(content_type=None))["message"] == NODE_LOST
            async with browser.get(f"{hub.url}/hub/user/{USER}/") as r:
                page = await r.text()
                assert r.status == 424
                assert NODE_LOST in page.replace("&#39;", "'"), page[:3000]
                assert node in page
        finally:
            await browser.close()
