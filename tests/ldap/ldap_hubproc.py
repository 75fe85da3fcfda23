"""Run a real JupyterHub (subprocess) and talk to its login page over HTTP.

The hub runs without configurable-http-proxy (a proxy class that only remembers routes):
the login page, /hub/health and the spawn API are all served by the hub itself. The spawner
used here starts a tiny HTTP responder in the hub process after asking the authenticator for
course access, so spawns succeed or fail exactly as LabHub's spawner will.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import aiohttp
from support import MEMORY_PROXY, free_port

from hub_ext.demo.processes import stop_process

HUB_CONFIG_HEAD = '''
import asyncio
from jupyterhub.spawner import Spawner
from traitlets import Set

from hub_ext.hub.hubdb import use_sqlite_wal

use_sqlite_wal()  # as recommended for sqlite-pvc deployments (docs/reference/spawner.md)


{memory_proxy}

class CourseSpawner(Spawner):
    """Asks the authenticator for course access, then serves 'ok' on a loopback port."""

    required_groups = Set(config=True)

    async def _answer(self, reader, writer):
        try:
            await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n"
                         b"Connection: close\\r\\n\\r\\nok")
            await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    async def start(self):
        await self.user.authenticator.check_course_access(self.user, self.required_groups)
        self._srv = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._srv.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{{port}}"

    async def stop(self, now=False):
        srv = getattr(self, "_srv", None)
        if srv is not None:
            srv.close()
            self._srv = None

    async def poll(self):
        return None if getattr(self, "_srv", None) is not None else 0


c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.proxy_class = RouteMemoryProxy
c.Proxy.should_start = False
c.JupyterHub.spawner_class = CourseSpawner
c.CourseSpawner.required_groups = {{"ml101-a"}}
c.JupyterHub.db_url = "sqlite:///{work}/hub.sqlite"
c.JupyterHub.cookie_secret = bytes.fromhex("{cookie_secret}")
c.JupyterHub.authenticator_class = "lab-ldap"
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "list:users", "read:users", "read:groups"],
    "services": ["tester"],
}}]
c.JupyterHub.cleanup_servers = True
'''


@dataclass
class HubProcess:
    """``start()`` a JupyterHub with ``extra_config`` appended to the base config."""

    work: Path
    extra_config: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    proxy_port: int = 0
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proxy_url(self) -> str:
        """The public URL (configurable-http-proxy, when the config starts it)."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def log_path(self) -> Path:
        return self.work / "hub.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proxy_port = free_port()
        self.token = secrets.token_hex(16)
        head = HUB_CONFIG_HEAD.format(
            memory_proxy=MEMORY_PROXY,
            proxy_port=self.proxy_port,
            hub_port=self.port,
            work=self.work,
            cookie_secret=secrets.token_hex(32),
            token=self.token,
        )
        conf = self.work / "jupyterhub_config.py"
        conf.write_text(head + "\n" + self.extra_config)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(conf)],
            cwd=self.work,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log_text()[-3000:]}")
            try:
                health = f"{self.url}/hub/health"  # http on loopback only
                with urllib.request.urlopen(health, timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jupyterhub did not start:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, 15)
        self.proc = None


@dataclass(frozen=True)
class LoginReply:
    status: int
    message: str  # the login page's error line ("" on success)
    body: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 302 and not self.message


_ERROR_RE = re.compile(r'class="login_error">(.*?)</p>', re.S)
_XSRF_RE = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


def new_session(source: str | None = None) -> aiohttp.ClientSession:
    """A browser-like session; ``source`` is the loopback address it connects from."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)


async def post_login(
    session: aiohttp.ClientSession,
    hub: HubProcess,
    username: str,
    password: str,
    client_ip: str | None = None,
    base: str | None = None,
    headers: dict[str, str] | None = None,
) -> LoginReply:
    """GET the login page (xsrf cookie + field), then POST the form like a browser.

    ``client_ip`` is sent as X-Forwarded-For (as a proxy on loopback would), ``base`` is the
    URL to talk to (the hub itself by default), ``headers`` are sent with both requests."""
    headers = dict(headers or {})
    if client_ip:
        headers["X-Forwarded-For"] = client_ip
    base = base or hub.url
    async with session.get(f"{base}/hub/login", headers=headers) as r:
        page = await r.text()
    match = _XSRF_RE.search(page)
    assert match, page[:500]
    form = {"_xsrf": unescape(match.group(1)), "username": username, "password": password}
    started = time.perf_counter()
    async with session.post(
        f"{base}/hub/login", data=form, headers=headers, allow_redirects=False
    ) as r:
        body = await r.text()
        status = r.status
    elapsed = time.perf_counter() - started
    err = _ERROR_RE.search(body)
    return LoginReply(status, unescape(err.group(1)).strip() if err else "", body, elapsed)


async def api(
    session: aiohttp.ClientSession, hub: HubProcess, method: str, path: str
) -> tuple[int, dict]:
    headers = {"Authorization": f"token {hub.token}"}
    async with session.request(method, f"{hub.url}/hub/api{path}", headers=headers) as r:
        try:
            data = await r.json(content_type=None)
        except ValueError:
            data = {}
        return r.status, data or {}
