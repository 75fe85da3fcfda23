"""The demo stack: OpenLDAP, the development cluster and JupyterHub with LabHub, on one machine.

:func:`run_demo` is what ``labhub demo`` calls. It starts, in order,

1. a private slapd (LDAPS with a throw-away CA) holding the reference lab's directory:
   50 students in the seminar groups ``ml101-a`` and ``ml101-b``, lecturers and an admin;
2. the development cluster (default: the reference lab, two rooms, 10x A100-40GB as 40
   ``1g.10gb`` MIG slices) in this process; its kubelets run the students' servers as processes;
3. JupyterHub (a subprocess) with LabLDAPAuthenticator, LabKubeSpawner, the course profiles in
   ``profiles/``, configurable-http-proxy, the idle culler and the admin view;

then prints the URL and the logins and waits for Ctrl-C (SIGINT) or SIGTERM, which stop the hub
(and every student server), the cluster and slapd, and finally any process still left below the
demo. State (the LDAP database, the cluster's objects and home volumes, the hub database) lives
under the state directory and is kept for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import aiohttp
import psutil  # type: ignore[import-untyped]

from hub_ext.adapters.ldap.reference_lab import (
    Slapd,
    lab_password,
    reference_lab,
    slapd_available,
    write_tls_files,
)
from hub_ext.demo import hubconfig
from hub_ext.demo.processes import (
    DemoError,
    PidFile,
    descendants,
    free_port,
    port_free,
    stop_process,
    strays,
    terminate,
)
from hub_ext.demo.supervise import Part, Supervisor, alive_only

if TYPE_CHECKING:
    from hub_ext.devcluster.cluster import DevCluster

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class DemoOptions:
    """What ``labhub demo`` was asked for."""

    state_dir: Path = Path(".state/demo")
    ip: str = "127.0.0.1"
    port: int = 8000
    cluster_file: Path | None = None
    profiles_dir: Path = ROOT / "profiles"
    idle_timeout: int = 3600
    check: bool = False
    start_timeout: float = 120.0


def _tool(name: str, *candidates: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DemoError(f"{name} is not installed: run 'make demo' (it installs what is missing)")


class DemoStack:
    """The running demo; :meth:`start` then :meth:`stop` (safe after a partial start)."""

    def __init__(self, options: DemoOptions, out: TextIO = sys.stdout) -> None:
        self.options = options
        self.state = options.state_dir.resolve()
        self.out = out
        self.lab = reference_lab()
        self.pidfile = PidFile(self.state)
        self.slapd: Slapd | None = None
        self.cluster: DevCluster | None = None
        self.hub: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._owns_pidfile = False
        self._hub_args: tuple[hubconfig.HubSettings, Path] | None = None
        self._hub_below: list[psutil.Process] = []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- start ----------------------------------------------------------------------------------

    def preflight(self) -> tuple[Path, Path, Path]:
        """Checks that need no process: tools, a second demo, the port. Returns tool paths."""
        if not 0 <= self.options.port <= 65535:
            raise DemoError(f"--port {self.options.port}: use 1-65535, or 0 for a free port")
        if not slapd_available():
            raise DemoError(
                "OpenLDAP's slapd is missing: install the Debian packages slapd and ldap-utils "
                "(make demo does this)"
            )
        chp = _tool("configurable-http-proxy", ROOT / "node_modules/.bin/configurable-http-proxy")
        singleuser = _tool("jupyterhub-singleuser", VENV_BIN / "jupyterhub-singleuser")
        culler = _tool("jupyterhub-idle-culler", VENV_BIN / "jupyterhub-idle-culler")
        if not self.options.profiles_dir.is_dir():
            raise DemoError(f"no course profiles in {self.options.profiles_dir}")
        self.pidfile.acquire()
        self._owns_pidfile = True
        if not port_free(self.options.ip, self.options.port):
            raise DemoError(
                f"port {self.options.port} on {self.options.ip} is in use: stop the program "
                "that uses it, or choose another port with --port N (0 picks a free one)"
            )
        return chp, singleuser, culler

    async def start(self) -> None:
        from hub_ext.devcluster.cluster import DevCluster
        from hub_ext.devcluster.config import ClusterConfigError, load_cluster_config

        chp, singleuser, culler = self.preflight()
        left = strays(self.state)
        if left:
            self.say(f"stopping {len(left)} process(es) left by an earlier demo run")
            terminate(left, timeout=5)
        try:
            config = load_cluster_config(self.options.cluster_file)
        except ClusterConfigError as exc:
            raise DemoError(f"cluster file: {exc}") from exc
        os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

        self.say(f"starting OpenLDAP (state: {self.state / 'ldap'}) ...")
        tls = write_tls_files(self.state / "tls")
        self.slapd = Slapd(self.state / "ldap", tls, self.lab)
        self.slapd.start()  # a second or two; not interruptible half-way

        self.say(f"starting the development cluster {config.name!r} ...")
        cluster = DevCluster(config, self.state / "cluster")
        self.cluster = cluster
        await cluster.start()

        port = self.options.port or free_port(self.options.ip)
        settings = hubconfig.HubSettings(
            ip=self.options.ip,
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=chp,
            ldap_url=self.slapd.ldaps_url,
            ca_file=tls.ca_cert,
            lab=self.lab,
            profiles_dir=self.options.profiles_dir.resolve(),
            policy_file=_existing(self.options.profiles_dir / "policy.yaml"),
            singleuser=singleuser,
            culler=culler,
            idle_timeout=self.options.idle_timeout,
            allow_root=os.geteuid() == 0,
        )
        host = "127.0.0.1" if self.options.ip in ("0.0.0.0", "") else self.options.ip
        self.url = f"http://{host}:{port}"
        self.say("starting JupyterHub ...")
        await self._start_hub(settings, cluster.kubeconfig)

    async def _start_hub(self, settings: hubconfig.HubSettings, kubeconfig: Path) -> None:
        self._hub_args = (settings, kubeconfig)
        self._hub_below = []
        hub_dir = self.state / "hub"
        config = hubconfig.write(settings, hub_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env.update(
            KUBECONFIG=str(kubeconfig),
            CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(32),
            PYTHONUNBUFFERED="1",
        )
        with open(hub_dir / "hub.log", "ab") as log:
            self.hub = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                cwd=hub_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.start_timeout
        async with aiohttp.ClientSession() as http:
            while not await _answers(http, f"{self.url}/hub/api/"):
                if self.hub.poll() is not None:
                    raise DemoError(
                        f"JupyterHub exited with code {self.hub.returncode}; "
                        f"see {hub_dir / 'hub.log'}"
                    )
                if loop.time() > deadline:
                    raise DemoError(
                        f"JupyterHub did not answer at {self.url} within "
                        f"{self.options.start_timeout:.0f} s; see {hub_dir / 'hub.log'}"
                    )
                await asyncio.sleep(0.25)

    def banner(self) -> str:
        a = self.lab.group("ml101-a").members
        b = self.lab.group("ml101-b").members
        return "\n".join(
            [
                "",
                f"LabHub demo is running: open {self.url}/",
                "",
                "Logins (password: the login name followed by -Pa55word):",
                f"  students, seminar group ml101-a: {a[0]} ... {a[-1]}"
                f"   e.g. {a[0]} / {lab_password(a[0])}",
                f"  students, seminar group ml101-b: {b[0]} ... {b[-1]}"
                f"   e.g. {b[0]} / {lab_password(b[0])}",
                f"  lecturer: lecturer1 / {lab_password('lecturer1')}",
                f"  admin:    labadmin / {lab_password('labadmin')}",
                "",
                f"State (homes, LDAP, hub database): {self.state}  (make demo-clean forgets it)",
                f"Logs: {self.state / 'hub' / 'hub.log'}, {self.state / 'ldap' / 'slapd.log'}",
                "Press Ctrl-C to stop.",
            ]
        )

    # -- supervision ----------------------------------------------------------------------------

    def supervisor(self) -> Supervisor:
        """Restarts a crashed JupyterHub or slapd (see :mod:`hub_ext.demo.supervise`)."""
        sup = Supervisor(self.say, lambda procs: terminate(procs, 5.0))
        sup.add(Part("JupyterHub", self._hub_exit_code, self._restart_hub, self._hub_leftovers))
        sup.add(Part("slapd", self._slapd_exit_code, self._restart_slapd))
        return sup

    def _hub_exit_code(self) -> int | None:
        if self.hub is None:
            return None
        code = self.hub.poll()
        if code is None:  # remember what it started: a killed hub leaves them running
            self._hub_below = descendants(self.hub.pid)
        return code

    def _hub_leftovers(self) -> list[psutil.Process]:
        """What the dead hub started (its proxy, its idle culler), found by the last snapshot
        or, for what started after it, as a process in the state directory not below the demo."""
        ours = {p.pid for p in descendants()}
        found = {p.pid: p for p in alive_only(self._hub_below)}
        for proc in strays(self.state):
            if proc.pid not in ours:
                found.setdefault(proc.pid, proc)
        return list(found.values())

    async def _restart_hub(self) -> None:
        assert self._hub_args is not None
        await self._start_hub(*self._hub_args)
        self.say(f"LabHub demo is running again: open {self.url}/")

    def _slapd_exit_code(self) -> int | None:
        proc = self.slapd.proc if self.slapd is not None else None
        return proc.poll() if proc is not None else None

    async def _restart_slapd(self) -> None:
        assert self.slapd is not None
        await asyncio.to_thread(self.slapd.start)

    # -- stop -----------------------------------------------------------------------------------

    async def stop(self) -> bool:
        """Stop the hub (it stops every server), the cluster, slapd, then any leftover.

        Returns whether any part had been started.
        """
        if not self._owns_pidfile:
            return False
        started = any(part is not None for part in (self.slapd, self.cluster, self.hub))
        below = descendants()
        if self.hub is not None:
            await asyncio.to_thread(stop_process, self.hub, 60.0)
            self.hub = None
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                await self.cluster.stop()
            self.cluster = None
        if self.slapd is not None:
            await asyncio.to_thread(self.slapd.stop)
            self.slapd = None
        await asyncio.to_thread(terminate, below + descendants(), 5.0)
        await asyncio.to_thread(terminate, strays(self.state), 5.0)
        self.pidfile.release()
        self._owns_pidfile = False
        return started


def _existing(path: Path) -> Path | None:
    return path.resolve() if path.exists() else None


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def check_login(url: str, user: str, password: str) -> str:
    """Log in through the hub's login form; '' on success, else what went wrong."""
    try:
        return await _login_problem(url, user, password)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"the hub did not answer: {exc}"


async def _login_problem(url: str, user: str, password: str) -> str:
    import re
    from html import unescape

    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
        async with http.get(f"{url}/hub/login") as resp:
            page = await resp.text()
            if resp.status != 200:
                return f"the login page answered {resp.status}"
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page)
        form = {"username": user, "password": password}
        if match:
            form["_xsrf"] = unescape(match.group(1))
        async with http.post(f"{url}/hub/login", data=form, allow_redirects=False) as resp:
            if resp.status != 302:
                return f"logging in as {user} answered {resp.status}"
    return ""


async def _main(options: DemoOptions, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = DemoStack(options, out)
    code = 0
    try:
        starting = asyncio.ensure_future(stack.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, DemoError):
                await starting
            stack.say("stopping the LabHub demo ...")
            return 130
        starting.result()  # raises DemoError
        if options.check:
            problem = await check_login(stack.url, "student01", lab_password("student01"))
            if problem:
                stack.say(f"demo check failed: {problem}")
                code = 1
            else:
                stack.say(f"demo check passed: {stack.url} answers and student01 can log in")
            stopping.cancel()
        else:
            stack.say(stack.banner())
            supervising = asyncio.ensure_future(stack.supervisor().run())
            await asyncio.wait({stopping, supervising}, return_when=asyncio.FIRST_COMPLETED)
            if supervising.done():
                code = 1
                stopping.cancel()
            else:
                supervising.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervising
            stack.say("stopping the LabHub demo ...")
    finally:
        stopped = await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        if stopped:
            stack.say("LabHub demo stopped")
    return code


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo in the foreground until Ctrl-C/SIGTERM (or once, with ``check``)."""
    return asyncio.run(_main(options, out))
