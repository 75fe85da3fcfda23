"""Oversized and malformed start requests against the real hub, proxy and slapd.

A 4 MB or 64 kB options body is answered with a short 413 (through configurable-http-proxy), a
too-long profile name with a short 400 that quotes at most 100 characters of it; none of them
is stored in the hub's database, hub.log grows by little, and a later start without options
does not replay them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from html import unescape
from pathlib import Path

import pytest
from lab_hub import LabHub, eventually, lab_hub

EXTRA = """
c.LabKubeSpawner.max_spawn_request_bytes = 16384
"""


def stored_options(hub: LabHub) -> list[str]:
    db = sqlite3.connect(hub.work / "jupyterhub.sqlite")
    try:
        return [row[0] or "" for row in db.execute("SELECT user_options FROM spawners")]
    finally:
        db.close()


def log_size(hub: LabHub) -> int:
    return sum(p.stat().st_size for p in hub.logs if p.exists())


async def post_raw(hub: LabHub, path: str, body: bytes) -> tuple[int, bytes]:
    assert hub.api is not None
    headers = {"Content-Type": "application/json"}
    async with hub.api.post(f"{hub.url}{path}", data=body, headers=headers) as resp:
        return resp.status, await resp.read()


@pytest.mark.slow
async def test_oversized_and_bad_options_are_refused_short_and_never_stored(
    tmp_path: Path,
) -> None:
    async with lab_hub(tmp_path, "e2e_profiles.provider", extra_config=EXTRA) as hub:
        await hub.login_all(["student10", "student11"])
        for size in (4 * 2**20, 64 * 2**10):
            before = log_size(hub)
            body = json.dumps({"profile": "x" * size}).encode()
            status, answer = await post_raw(hub, "/hub/api/users/student10/server", body)
            assert status in (400, 413), answer[:300]
            assert len(answer) < 1024, len(answer)
            assert b"16384 bytes" in answer  # says what the limit is
            assert log_size(hub) - before < 2048, hub.log_text()[before:][:3000]

        # a profile name too long for any course: 400 quoting at most 100 characters
        before = log_size(hub)
        body = json.dumps({"profile": "y" * 5000}).encode()
        status, answer = await post_raw(hub, "/hub/api/users/student10/server", body)
        assert status == 400, answer[:300]
        assert len(answer) < 1024
        message = json.loads(answer)["message"]
        assert "y" * 100 in message and "y" * 101 not in message, message
        assert "5000 characters" in message
        assert log_size(hub) - before < 2048
        # unknown option keys are refused with the accepted ones named
        body = json.dumps({"profile": "ml-101", "image": "evil/image"}).encode()
        status, answer = await post_raw(hub, "/hub/api/users/student10/server", body)
        assert status == 400 and b"accepted: profile" in answer, answer
        # the named-server form and PATCH are bounded the same way
        big = json.dumps({"user_options": {"profile": "z" * 70000}}).encode()
        status, answer = await post_raw(hub, "/hub/api/users/student10/servers/extra", big)
        assert status in (400, 413) and len(answer) < 1024

        # the spawn form: a 4 MB form body and a long profile value, with a student's cookie
        browser = await hub.login("student11")
        try:
            async with browser.get(f"{hub.url}/hub/spawn") as resp:
                page = await resp.text()
            found = re.search(r"_xsrf=([^\"&]+)", page)
            assert found, page[:2000]
            spawn = f"{hub.url}/hub/spawn?_xsrf={unescape(found.group(1))}"
            before = log_size(hub)
            form = {"profile": "q" * (4 * 2**20)}
            async with browser.post(spawn, data=form) as resp:
                assert resp.status == 413, resp.status
                assert len(await resp.read()) < 1024
            form = {"profile": "w" * 3000}
            async with browser.post(spawn, data=form) as resp:
                text = await resp.text()
                assert resp.status == 400, resp.status
                assert "w" * 100 in text and "w" * 101 not in text
            assert log_size(hub) - before < 4096
        finally:
            await browser.close()

        # nothing of it is stored
        for options in stored_options(hub):
            assert len(options) < 200, options[:300]
        assert not any(("x" * 50) in o or ("q" * 50) in o for o in stored_options(hub))

        # a start without options does not replay anything: student10 has one course only
        status, answer = await post_raw(hub, "/hub/api/users/student10/server", b"")
        assert status in (201, 202), answer[:300]
        await eventually(lambda: hub.ready("student10"), 120, "student10 ready")
        await hub.stop("student10")
