"""Transient API errors on pod creation are retried; past the retry time the student gets one
clear message and no pod is left behind (the devcluster's fault injection answers the creates)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from direct_spawn import lab
from tornado import web


async def _spawn(tmp: Path, status: int, times: int, profile: str) -> dict[str, Any]:
    async with lab(tmp) as cluster:
        group = "ml101-a" if profile == "ml-101" else "intro"
        config = cluster.config(k8s_api_request_retry_timeout=2, queue_timeout=60)
        spawner = cluster.spawner(config, group=group)
        spawner.user_options = {"profile": profile}
        rule = cluster.cluster.api.faults.inject_error("create", "pods", status, times=times)
        outcome: dict[str, Any] = {}
        try:
            outcome["url"] = await asyncio.wait_for(spawner.start(), 90)
        except web.HTTPError as e:
            outcome["error"] = e
        outcome["hits"] = rule.hits
        outcome["pod_after_failure"] = await cluster.pod("jupyter-anna")
        cluster.cluster.api.faults.clear()
        if "error" in outcome:
            # the next start begins clean and succeeds
            spawner.clear_state()
            spawner.user_options = {"profile": profile}
            outcome["next_url"] = await asyncio.wait_for(spawner.start(), 90)
        pod = await cluster.pod("jupyter-anna")
        outcome["pod"] = pod
        await spawner.stop(now=True)
        return outcome


@pytest.mark.parametrize("profile", ["intro-python", "ml-101"])
@pytest.mark.parametrize("status", [500, 503])
def test_one_transient_error_is_absorbed(tmp_path: Path, status: int, profile: str) -> None:
    outcome = asyncio.run(_spawn(tmp_path, status, 1, profile))
    assert "error" not in outcome, outcome.get("error")
    assert outcome["hits"] == 1
    assert outcome["pod"]["status"]["phase"] == "Running"
    assert outcome["url"].startswith(f"http://{outcome['pod']['status']['podIP']}:")


@pytest.mark.parametrize("profile", ["intro-python", "ml-101"])
@pytest.mark.parametrize("status", [500, 503])
def test_three_transient_errors_past_the_retry_time_give_one_clear_message(
    tmp_path: Path, status: int, profile: str
) -> None:
    outcome = asyncio.run(_spawn(tmp_path, status, 3, profile))
    error = outcome["error"]
    assert error.status_code == 503
    assert error.log_message.startswith("The cluster did not accept your server's pod for 2 sec")
    assert f"HTTP {status}" in error.log_message
    assert "press Start again" in error.log_message
    assert "Internal Server Error" not in error.log_message
    assert outcome["hits"] >= 2
    assert outcome["pod_after_failure"] is None  # nothing queued, nothing running
    assert outcome["pod"]["status"]["phase"] == "Running"  # the next start began clean
    assert outcome["next_url"]
