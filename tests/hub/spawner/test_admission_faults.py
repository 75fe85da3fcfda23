"""Transient API errors on the gate patch, injected with the devcluster's fault rules, against
the real hub, proxy and slapd: one is absorbed by the retry; three, past the retry time, end the
spawn with one clear message and leave no queued pod, and the next start begins clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_hub import LabHub, eventually, lab_hub

# three failed tries (waits of about 0.5 s and 1 s between them) take longer than this
EXTRA = """
c.LabKubeSpawner.k8s_api_request_retry_timeout = 2
"""
USER = "student12"


async def failure_event(hub: LabHub, user: str, timeout: float = 60) -> dict[str, object]:
    line = await hub.progress_line(user, '"failed": true', timeout)
    event: dict[str, object] = json.loads(line.removeprefix("data:").strip())
    return event


async def own_pods(hub: LabHub, user: str) -> list[str]:
    return [p.metadata.name for p in await hub.pods() if p.metadata.name == f"jupyter-{user}"]


@pytest.mark.slow
async def test_gate_patch_errors_are_retried_then_reported_once(tmp_path: Path) -> None:
    async with lab_hub(tmp_path, "e2e_profiles.provider", extra_config=EXTRA) as hub:
        faults = hub.cluster.api.faults
        await hub.login_all([USER])

        # one 503 on the gate patch: absorbed by the retry
        rule = faults.inject_error("patch", "pods", 503, times=1)
        status, text = await hub.start(USER)
        assert status in (201, 202), text
        await eventually(lambda: hub.ready(USER), 120, f"{USER} ready after one 503")
        assert rule.hits == 1
        await hub.stop(USER)
        await eventually(lambda: _no_pod(hub), 60, "the pod deleted")

        # three 500s: the retry time is spent after the third; one message, no queued pod
        rule = faults.inject_error("patch", "pods", 500, times=3)
        status, text = await hub.start(USER)
        if status == 202:  # still queued when the hub answered: the failure comes as progress
            message = str((await failure_event(hub, USER))["message"])
        else:
            assert status == 503, text
            message = json.loads(text)["message"]
        assert "could not be given its GPU slice" in message, message
        assert "HTTP 500" in message and "Press Start to try again" in message, message
        assert message.count("Press Start") == 1
        assert rule.hits == 3
        await eventually(lambda: _no_pod(hub), 60, "no queued pod left")
        assert await hub.gated() == []
        assert await hub.server(USER) is None

        # the next start begins clean
        status, text = await hub.start(USER)
        assert status in (201, 202), text
        await eventually(lambda: hub.ready(USER), 120, f"{USER} ready after the failure")
        assert rule.hits == 3
        await hub.stop(USER)


async def _no_pod(hub: LabHub) -> bool:
    return not await own_pods(hub, USER)
