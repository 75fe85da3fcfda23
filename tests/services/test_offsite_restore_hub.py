"""``labhub-backup restore --in-place`` asks a real JupyterHub and refuses while the server runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from support import eventually, free_port, start_jupyterhub

from hub_ext.demo.processes import stop_process_async

ROOT = Path(__file__).resolve().parents[2]
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "restore-test-password"
LIGHT_SERVER = """
import os, http.server, urllib.parse
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((url.hostname, url.port), H).serve_forever()
"""
HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home!r}
c.Spawner.cmd = [{python!r}, "-c", {light!r}]
c.Spawner.args = []
c.JupyterHub.services = [{{"name": "restore-admin", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "restore-admin", "services": ["restore-admin"],
      "scopes": ["admin:users", "admin:servers"]}},
]
"""


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[str, str, aiohttp.ClientSession]]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy missing at {CHP}; run npm ci")
    work = tmp_path / "hub"
    (work / "spawn-homes").mkdir(parents=True)
    port, token = free_port(), secrets.token_hex(16)
    (work / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            home=str(work / "spawn-homes" / "{username}"),
            python=sys.executable,
            light=LIGHT_SERVER,
            token=token,
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "JUPYTER"))}
    url = f"http://127.0.0.1:{port}/hub/api"
    with open(work / "hub.log", "wb") as log:
        proc = await start_jupyterhub(work, env, log)
    session = aiohttp.ClientSession(headers={"Authorization": f"token {token}"})

    async def up() -> bool:
        if proc.returncode is not None:
            raise AssertionError((work / "hub.log").read_text(errors="replace")[-2000:])
        try:
            async with session.get(f"{url}/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await eventually(up, 60, "JupyterHub up")
        yield url, token, session
    finally:
        await session.close()
        await stop_process_async(proc, 20)


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub_ext.services.backup",
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def _ready(session: aiohttp.ClientSession, url: str, user: str) -> bool:
    async with session.get(f"{url}/users/{user}") as resp:
        server = (await resp.json())["servers"].get("")
    return bool(server and server.get("ready"))


async def test_in_place_restore_waits_for_the_server_to_stop(
    hub: tuple[str, str, aiohttp.ClientSession], tmp_path: Path
) -> None:
    url, token, session = hub
    homes, repo = tmp_path / "homes", tmp_path / "repo"
    (homes / "claim-bob").mkdir(parents=True)
    (homes / "claim-bob" / "thesis.tex").write_text("chapter 1\n")
    env = {
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        "JUPYTERHUB_API_URL": url,
        "JUPYTERHUB_API_TOKEN": token,
    }
    common = (f"--repository={repo}", f"--homes-root={homes}")
    code, _out, err = await _cli("run", *common, "--initialize", env=env)
    assert code == 0, err
    (homes / "claim-bob" / "thesis.tex").write_text("chapter 1, overwritten\n")

    async with session.post(f"{url}/users/bob") as resp:
        assert resp.status in (201, 409)
    async with session.post(f"{url}/users/bob/server") as resp:
        assert resp.status in (201, 202), await resp.text()
    await eventually(lambda: _ready(session, url, "bob"), 60, "bob's server ready")

    code, _out, err = await _cli("restore", "bob", "--in-place", *common, env=env)
    assert code == 1
    assert "bob's server is running" in err and "Stop it first" in err
    assert (homes / "claim-bob" / "thesis.tex").read_text() == "chapter 1, overwritten\n"
    assert sorted(p.name for p in homes.iterdir()) == ["claim-bob"]

    async with session.delete(f"{url}/users/bob/server") as resp:
        assert resp.status in (202, 204)

    async def stopped() -> bool:
        return not await _ready(session, url, "bob")

    await eventually(stopped, 60, "bob's server stopped")
    code, out, err = await _cli("restore", "bob", "--in-place", *common, env=env)
    assert code == 0, err
    assert "restored bob's home" in out
    assert (homes / "claim-bob" / "thesis.tex").read_text() == "chapter 1\n"
