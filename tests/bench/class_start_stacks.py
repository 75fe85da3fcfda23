"""The three hubs of the class-start benchmark, each a real JupyterHub process with the same
configurable-http-proxy, database settings, admin token and in-hub probe (:mod:`hub_probe`):

* ``labhub``: LabHub as the tests run it (``lab-ldap`` + ``lab-kube`` with slice admission), the
  configuration of ``tests/hub/spawner/lab_hub.py``;
* ``stock``: what a university would deploy instead: KubeSpawner with a ``profile_list`` whose
  profile requests ``nvidia.com/mig-1g.10gb`` and a home volume per student (Zero to
  JupyterHub's default dynamic storage), and ldapauthenticator's ``LDAPAuthenticator`` (blocking
  ldap3 binds on the hub's event loop), with the same directory settings;
* ``floor``: JupyterHub with ``DummyAuthenticator`` and :class:`hub_probe.InstantSpawner`.

The two Kubernetes stacks run the same light single-user server (``light_server.py``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
from lab_hub import CHP, HERE, LabHub
from support import eventually, free_port, start_jupyterhub

from hub_ext.adapters.ldap.reference_lab import SERVICE_DN, SERVICE_PASSWORD, Slapd
from hub_ext.demo.processes import stop_process_async

BENCH = Path(__file__).resolve().parent
STACKS = ("labhub", "stock", "floor")
LABELS = {"labhub": "LabHub", "stock": "stock", "floor": "floor"}

COMMON = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
c.JupyterHub.services = [{{"name": "e2e", "api_token": {token!r}}}]
c.JupyterHub.trust_user_provided_tokens = True
c.JupyterHub.load_roles = [{{
    "name": "e2e",
    "services": ["e2e"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users", "read:metrics"],
}}]
from hub_ext.hub.hubdb import use_sqlite_wal
use_sqlite_wal()
"""

STOCK = """
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
c.LDAPAuthenticator.server_address = "127.0.0.1"
c.LDAPAuthenticator.server_port = {ldap_port}
c.LDAPAuthenticator.tls_strategy = "before_bind"
c.LDAPAuthenticator.tls_kwargs = {{"ca_certs_file": {ca!r}}}
c.LDAPAuthenticator.lookup_dn = True
c.LDAPAuthenticator.lookup_dn_search_filter = "({{login_attr}}={{login}})"
c.LDAPAuthenticator.lookup_dn_search_user = {service_dn!r}
c.LDAPAuthenticator.lookup_dn_search_password = {service_password!r}
c.LDAPAuthenticator.user_search_base = {people!r}
c.LDAPAuthenticator.user_attribute = "uid"
c.LDAPAuthenticator.lookup_dn_user_dn_attribute = "uid"
c.LDAPAuthenticator.allowed_groups = {allowed!r}
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = "default"
c.KubeSpawner.image = "registry.example.org/labhub/singleuser-ml:2026.1"
c.KubeSpawner.cmd = [{python!r}, {light!r}]
c.KubeSpawner.args = []
c.KubeSpawner.start_timeout = {start_timeout}
c.KubeSpawner.http_timeout = 120
c.KubeSpawner.events_enabled = False
# a home volume per student, as Zero to JupyterHub's default dynamic storage (and LabHub) do
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "10Gi"
c.KubeSpawner.storage_class = "ceph-rbd"
c.KubeSpawner.pvc_name_template = "claim-{{user_server}}"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "claim-{{user_server}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
c.KubeSpawner.profile_list = [{{
    "display_name": "Machine Learning 101",
    "slug": "ml-101",
    "description": "PyTorch, one MIG slice",
    "default": True,
    "kubespawner_override": {{
        "cpu_guarantee": 0.05, "cpu_limit": 1.0,
        "mem_guarantee": "64M", "mem_limit": "1G",
        "extra_resource_limits": {{"nvidia.com/mig-1g.10gb": "1"}},
    }},
}}]
"""

FLOOR = """
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.allow_all = True
c.JupyterHub.spawner_class = "hub_probe.InstantSpawner"
"""

PROBE = """
import sys as _sys
_sys.path.insert(0, {bench!r})
import hub_probe
hub_probe.install({events!r}, {profile!r})
"""

_XSRF = re.compile(r'name="_xsrf"\s+value="([^"]+)"')
_LOGIN_ERROR = re.compile(r'class="login_error">(.*?)</p>', re.S)


@dataclass
class BenchHub:
    """One hub process of one stack, in a fresh working directory."""

    stack: str
    work: Path
    slapd: Slapd
    kubeconfig: Path
    allowed_groups: list[str]
    stock_start_timeout: int
    profile_dir: str = ""
    url: str = ""
    token: str = ""
    proc: Any = None
    api: aiohttp.ClientSession | None = None
    events: Path = field(init=False)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True)
        self.events = self.work / "events.jsonl"

    def config_text(self, port: int) -> str:
        if self.stack == "labhub":
            # LabHub exactly as its end-to-end tests configure it (cluster: unused here)
            lab = LabHub(self.work, None, self.slapd, "e2e_profiles.provider")  # type: ignore[arg-type]
            self.token = lab.token
            head = lab.config_text(port)
        else:
            self.token = os.urandom(16).hex()
            head = COMMON.format(
                port=port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
                chp=str(CHP),
                token=self.token,
            )
            if self.stack == "stock":
                head += STOCK.format(
                    ldap_port=self.slapd.port,
                    ca=str(self.slapd.tls.ca_cert),
                    service_dn=SERVICE_DN,
                    service_password=SERVICE_PASSWORD,
                    people=f"ou=people,{self.slapd.lab.base_dn}",
                    allowed=self.allowed_groups,
                    python=sys.executable,
                    light=str(HERE / "light_server.py"),
                    start_timeout=self.stock_start_timeout,
                )
            else:
                head += FLOOR
        probe = PROBE.format(bench=str(BENCH), events=str(self.events), profile=self.profile_dir)
        return head + probe

    async def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        (self.work / "jupyterhub_config.py").write_text(self.config_text(port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env.update(KUBECONFIG=str(self.kubeconfig))
        self.log = open(self.work / "hub.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = await start_jupyterhub(self.work, env, self.log)
        self.api = aiohttp.ClientSession(headers={"Authorization": f"token {self.token}"})
        await eventually(self._up, 90, f"the {self.stack} hub up")

    async def _up(self) -> bool:
        assert self.api is not None
        if self.proc.returncode is not None:
            raise RuntimeError(f"the {self.stack} hub exited:\n{self.log_text()[-3000:]}")
        try:
            async with self.api.get(f"{self.url}/hub/api/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.close()
            self.api = None
        if self.proc is not None:
            await stop_process_async(self.proc, 20)
            self.proc = None
            self.log.close()

    def log_text(self) -> str:
        path = self.work / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, sig)

    async def start_server(self, user: str) -> tuple[int, str]:
        assert self.api is not None
        async with self.api.post(
            f"{self.url}/hub/api/users/{user}/server", json={"profile": "ml-101"}
        ) as resp:
            return resp.status, await resp.text()

    async def progress_line(self, user: str, needle: str, timeout: float = 30) -> str:
        assert self.api is not None
        url = f"{self.url}/hub/api/users/{user}/server/progress"
        try:
            async with self.api.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                async for line in r.content:
                    if needle in line.decode():
                        return line.decode().strip()
        except (aiohttp.ClientError, TimeoutError):
            pass
        return ""


@dataclass(frozen=True)
class Login:
    seconds: float
    error: str  # "" when the login worked


async def login(hub: BenchHub, user: str, password: str, home: bool = False) -> Login:
    """GET the login form, POST it (timed) like a browser, optionally open /hub/home."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        try:
            async with browser.get(f"{hub.url}/hub/login") as resp:
                page = await resp.text()
            match = _XSRF.search(page)
            if not match:
                return Login(0.0, f"login page without a form ({resp.status})")
            form = {"_xsrf": unescape(match.group(1)), "username": user, "password": password}
            started = time.perf_counter()
            async with browser.post(
                f"{hub.url}/hub/login", data=form, allow_redirects=False
            ) as resp:
                body = await resp.text()
                seconds = time.perf_counter() - started
                if resp.status != 302:
                    err = _LOGIN_ERROR.search(body)
                    return Login(seconds, unescape(err.group(1)).strip() if err else body[:80])
            if home:
                async with browser.get(f"{hub.url}/hub/home") as resp:
                    await resp.read()
                    if resp.status != 200:
                        return Login(seconds, f"/hub/home answered {resp.status}")
            return Login(seconds, "")
        except aiohttp.ClientError as err:
            return Login(0.0, f"{type(err).__name__}: {err}")
