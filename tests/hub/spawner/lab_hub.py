"""The reference lab end to end: real OpenLDAP, the emulated cluster, a real JupyterHub with
LabKubeSpawner and configurable-http-proxy, students logging in over the hub's login form.

Students whose name is in ``real_servers`` get the real ``jupyterhub-singleuser``; every other
student gets :mod:`light_server` (the hub only needs an HTTP answer to route to it), so that
filling the lab's 40 slices stays cheap on a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
from hub_rbac import hub_kubeconfig
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from support import VENV_BIN, eventually, free_port, start_jupyterhub

from hub_ext.adapters.ldap.reference_lab import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    lab_password,
    reference_lab,
    slapd_available,
    write_tls_files,
)
from hub_ext.demo.processes import stop_process_async
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import load_cluster_config

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
REFERENCE_LAB = ROOT / "hub_ext" / "devcluster" / "data" / "reference-lab.yaml"
LAB = reference_lab()

HUB_CONFIG = """
import sys
sys.path.insert(0, {here!r})
import e2e_profiles
from hub_ext.hub.hubdb import use_sqlite_wal
use_sqlite_wal()  # as recommended for sqlite-pvc deployments (docs/reference/spawner.md)
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
c.JupyterHub.authenticator_class = "lab-ldap"
c.LDAPAuthenticator.lookup_dn = True
c.LDAPAuthenticator.lookup_dn_search_filter = "({{login_attr}}={{login}})"
c.LDAPAuthenticator.lookup_dn_search_user = {service_dn!r}
c.LDAPAuthenticator.lookup_dn_search_password = {service_password!r}
c.LDAPAuthenticator.user_search_base = {people!r}
c.LDAPAuthenticator.user_attribute = "uid"
c.LDAPAuthenticator.lookup_dn_user_dn_attribute = "uid"
c.LDAPAuthenticator.tls_strategy = "before_bind"
c.LDAPAuthenticator.tls_kwargs = {{"ca_certs_file": {ca!r}}}
c.LDAPAuthenticator.allowed_groups = {allowed!r}
c.LabLDAPAuthenticator.server_urls = [{ldap_url!r}]
c.LabLDAPAuthenticator.group_search_base = {groups!r}
c.LabLDAPAuthenticator.admin_groups = {{"hub-admins"}}
c.Authenticator.manage_groups = True
c.JupyterHub.services = [{{"name": "e2e", "api_token": {token!r}}}]
# The e2e token is 128 random bits: check it with one hash round, not 16384 (students' own
# requests carry cookies and never pay for this; the tests' admin token does on every call).
c.JupyterHub.trust_user_provided_tokens = True
c.JupyterHub.load_roles = [{{
    "name": "e2e",
    "services": ["e2e"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users", "read:metrics"],
}}]
c.JupyterHub.spawner_class = "lab-kube"
c.LabKubeSpawner.namespace = "default"
c.LabKubeSpawner.profile_provider = {provider}
c.LabKubeSpawner.args = {extra_args!r}
c.LabKubeSpawner.start_timeout = 120
c.LabKubeSpawner.http_timeout = 120
c.LabKubeSpawner.queue_timeout = 300
c.LabKubeSpawner.events_enabled = False
REAL = {real!r}


def _server_command(spawner):
    if spawner.user.name in REAL:
        spawner.cmd = [{singleuser!r}]
    else:
        spawner.cmd = [{python!r}, {light!r}]
        spawner.args = []


c.LabKubeSpawner.pre_spawn_hook = _server_command
"""


_XSRF = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


@dataclass
class LabHub:
    """A running hub on the reference lab; ``api`` carries the admin service token."""

    work: Path
    cluster: DevCluster
    slapd: Slapd
    provider: str
    real_servers: tuple[str, ...] = ()
    url: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    api: aiohttp.ClientSession | None = None
    core: CoreV1Api | None = None
    proc: Any = None
    logs: list[Path] = field(default_factory=list)

    def config_text(self, port: int) -> str:
        return HUB_CONFIG.format(
            here=str(HERE),
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            service_dn=SERVICE_DN,
            service_password=SERVICE_PASSWORD,
            people=f"ou=people,{LAB.base_dn}",
            groups=f"ou=groups,{LAB.base_dn}",
            ca=str(self.slapd.tls.ca_cert),
            allowed=[LAB.group_dn(g) for g in ("ml101-a", "ml101-b", "cv201", "hub-admins")],
            ldap_url=self.slapd.url,
            token=self.token,
            provider=self.provider,
            extra_args=["--allow-root"] if os.geteuid() == 0 else [],
            real=sorted(self.real_servers),
            singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
            python=sys.executable,
            light=str(HERE / "light_server.py"),
        )

    async def start_hub(self) -> None:
        if not self.url:
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            (self.work / "jupyterhub_config.py").write_text(self.config_text(port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        # the chart's hub ServiceAccount, Role and ClusterRole, as a real install has them
        kubeconfig = await hub_kubeconfig(self.cluster, self.work / "hub-kubeconfig")
        env.update(KUBECONFIG=str(kubeconfig))
        log_path = self.work / f"hub-{len(self.logs)}.log"
        self.logs.append(log_path)
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop_hub
        self.proc = await start_jupyterhub(self.work, env, log)
        self.proc.log_file = log
        await eventually(self._up, 60, "JupyterHub up")

    async def _up(self) -> bool:
        assert self.api is not None
        try:
            async with self.api.get(f"{self.url}/hub/api/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def stop_hub(self) -> float:
        """SIGTERM the hub; the seconds it took to exit (SIGKILL after 20 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0.0
        started = asyncio.get_running_loop().time()
        await stop_process_async(proc, 20)
        proc.log_file.close()
        return asyncio.get_running_loop().time() - started

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    # -- students -------------------------------------------------------------------------------

    async def login(self, user: str) -> aiohttp.ClientSession:
        """A browser session logged in through the hub's login form (LDAP bind)."""
        browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            async with browser.get(f"{self.url}/hub/login") as resp:
                page = await resp.text()
            match = _XSRF.search(page)
            assert match, page[:300]
            form = {
                "_xsrf": unescape(match.group(1)),
                "username": user,
                "password": lab_password(user),
            }
            async with browser.post(
                f"{self.url}/hub/login", data=form, allow_redirects=False
            ) as resp:
                assert resp.status == 302, await resp.text()
        except BaseException:
            await browser.close()
            raise
        return browser

    async def login_all(self, users: list[str]) -> None:
        async def one(user: str) -> None:
            browser = await self.login(user)
            await browser.close()

        for start in range(0, len(users), 10):
            await asyncio.gather(*(one(u) for u in users[start : start + 10]))

    async def start(self, user: str, profile: str = "ml-101") -> tuple[int, str]:
        assert self.api is not None
        async with self.api.post(
            f"{self.url}/hub/api/users/{user}/server", json={"profile": profile}
        ) as resp:
            return resp.status, await resp.text()

    async def server(self, user: str) -> dict[str, Any] | None:
        assert self.api is not None
        async with self.api.get(f"{self.url}/hub/api/users/{user}") as resp:
            server: dict[str, Any] | None = (await resp.json())["servers"].get("")
            return server

    async def ready(self, user: str) -> bool:
        server = await self.server(user)
        return bool(server and server.get("ready"))

    async def stop(self, user: str) -> None:
        assert self.api is not None
        async with self.api.delete(f"{self.url}/hub/api/users/{user}/server") as resp:
            assert resp.status in (202, 204), await resp.text()

        async def gone() -> bool:
            return await self.server(user) is None

        await eventually(gone, 60, f"{user} stopped")

    async def progress_line(self, user: str, needle: str, timeout: float = 30) -> str:
        assert self.api is not None

        async def read() -> str:
            assert self.api is not None
            async with self.api.get(f"{self.url}/hub/api/users/{user}/server/progress") as r:
                async for line in r.content:
                    if needle in line.decode():
                        return line.decode()
            return ""

        return await asyncio.wait_for(read(), timeout)

    async def pods(self) -> list[Any]:
        assert self.core is not None
        return list((await self.core.list_namespaced_pod("default")).items)

    async def gated(self) -> list[str]:
        return sorted(p.metadata.name for p in await self.pods() if p.spec.scheduling_gates)

    async def holding(self) -> list[Any]:
        """Pods that hold (or are about to hold) a slice."""
        return [
            p
            for p in await self.pods()
            if not p.spec.scheduling_gates
            and not p.metadata.deletion_timestamp
            and p.status.phase not in ("Succeeded", "Failed")
            and any(
                k.startswith("nvidia.com/")
                for c in p.spec.containers
                for k in (c.resources.limits or {})
            )
        ]


@contextlib.asynccontextmanager
async def lab_hub(
    tmp: Path, provider: str, real_servers: tuple[str, ...] = ()
) -> AsyncIterator[LabHub]:
    """slapd with the reference lab's accounts, the reference lab cluster and a hub."""
    assert CHP.exists(), "configurable-http-proxy is not installed (npm install)"
    assert slapd_available(), "OpenLDAP's slapd is missing (Debian packages slapd, ldap-utils)"
    slapd = Slapd(tmp / "slapd", write_tls_files(tmp / "tls"), LAB)
    slapd.start()
    try:
        async with DevCluster(load_cluster_config(REFERENCE_LAB), tmp / "cluster") as cluster:
            work = tmp / "hub"
            work.mkdir()
            hub = LabHub(work, cluster, slapd, provider, real_servers)
            headers = {"Authorization": f"token {hub.token}"}
            async with (
                aiohttp.ClientSession(headers=headers) as hub.api,
                ApiClient(configuration=Configuration(host=cluster.api.url)) as client,
            ):
                hub.core = CoreV1Api(client)
                try:
                    await hub.start_hub()
                    yield hub
                except BaseException:
                    print(hub.log_text()[-10000:])
                    raise
                finally:
                    await hub.stop_hub()
    finally:
        slapd.stop()
