"""A real JupyterHub (subprocess) with LabHub's admin view, for the admin view's tests.

The hub runs without configurable-http-proxy (a proxy class that only remembers routes) and
with JupyterHub's DummyAuthenticator; users and their API tokens are made through the REST API
with a service token.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import MEMORY_PROXY, free_port

from hub_ext.demo.processes import stop_process

CONFIG = """
from hub_ext.hub.admin_view import handlers
{memory_proxy}

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.proxy_class = RouteMemoryProxy
c.Proxy.should_start = False
c.JupyterHub.db_url = "sqlite:///{work}/hub.sqlite"
c.JupyterHub.cookie_secret = bytes.fromhex("{cookie_secret}")
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"labadmin"}}
c.JupyterHub.extra_handlers = handlers()
c.LabKubeSpawner.profiles_dir = "{work}/no-courses-here"
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{
    "name": "tester", "scopes": ["admin:users", "tokens"], "services": ["tester"],
}}]
"""


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AdminHub:
    work: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        path = self.work / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "no-courses-here").mkdir(exist_ok=True)  # a profiles path without courses
        self.port, self.token = free_port(), secrets.token_hex(16)
        conf = self.work / "jupyterhub_config.py"
        conf.write_text(
            CONFIG.format(
                memory_proxy=MEMORY_PROXY,
                proxy_port=free_port(),
                hub_port=self.port,
                work=self.work,
                cookie_secret=secrets.token_hex(32),
                token=self.token,
            )
        )
        with open(self.work / "hub.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(conf)],
                cwd=self.work,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{self.log_text()[-3000:]}")
            if self.request("/hub/health").status == 200:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jupyterhub did not start:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, 15)
        self.proc = None

    def request(
        self,
        path: str,
        token: str | None = None,
        method: str = "GET",
        body: Any = None,
        browser: urllib.request.OpenerDirector | None = None,
    ) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        if token:
            req.add_header("Authorization", f"token {token}")
        opener = browser or urllib.request.build_opener()
        try:
            with opener.open(req, timeout=10) as r:  # loopback only
                return Reply(r.status, r.read().decode(), r.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as e:
            return Reply(e.code, e.read().decode(), e.headers.get("Content-Type", ""))
        except OSError:
            return Reply(0, "", "")

    def user_token(self, name: str) -> str:
        """Create the user (if needed) and return a new API token of theirs."""
        self.request(f"/hub/api/users/{name}", self.token, "POST", {})
        reply = self.request(f"/hub/api/users/{name}/tokens", self.token, "POST", {})
        assert reply.status in (200, 201), reply
        return str(reply.json()["token"])

    def browser(self, name: str) -> urllib.request.OpenerDirector:
        """A cookie-keeping client logged in through the hub's login form."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = self.request("/hub/login", browser=opener).body
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', form)
        assert match, form[:500]
        body = urllib.parse.urlencode({"username": name, "password": "x", "_xsrf": match[1]})
        req = urllib.request.Request(  # noqa: S310 - loopback only
            self.url + "/hub/login?next=%2Fhub%2Fhealth", data=body.encode(), method="POST"
        )
        with opener.open(req, timeout=10) as reply:
            assert reply.status == 200
        return opener
