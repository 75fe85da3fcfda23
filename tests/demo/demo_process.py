"""Run ``labhub demo`` as a subprocess (the CLI's own entry) and talk to it like a browser."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import psutil
import requests

from hub_ext.adapters.ldap.reference_lab import lab_password

READY = re.compile(r"LabHub demo is running: open (http://\S+?)/?$")
XSRF = re.compile(r'name="_xsrf"\s+value="([^"]+)"|xsrf_token: "([^"]+)"')


@dataclass
class DemoProcess:
    """``python -m hub_ext demo --port 0 --state-dir STATE [extra]`` in the foreground."""

    state: Path
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def command(self) -> list[str]:
        base = [sys.executable, "-m", "hub_ext", "demo", "--port", "0"]
        return [*base, "--state-dir", str(self.state), *self.extra]

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def start(self, timeout: float = 120.0) -> str:
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.url:
            if self.proc.poll() is not None:
                raise AssertionError(f"labhub demo exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"labhub demo did not come up:\n{self.log}")
            time.sleep(0.1)
        return self.url

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = READY.search(line.strip())
            if match:
                self.url = match.group(1)

    @property
    def log(self) -> str:
        hub_log = self.state / "hub" / "hub.log"
        tail = hub_log.read_text(errors="replace")[-6000:] if hub_log.exists() else ""
        return f"{self.output}\n--- hub.log ---\n{tail}"

    def processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120.0) -> int:
        """Send ``sig`` to the demo (like Ctrl-C or ``kill``) and wait for it to exit."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """Cleanup after a failed test: the demo and everything below it."""
        if self.proc is None:
            return
        below = self.processes()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for proc in below:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
    return out


def login(url: str, user: str, password: str | None = None) -> requests.Session:
    """A requests session logged in through the hub's login form."""
    http = requests.Session()
    page = http.get(f"{url}/hub/login", timeout=30)
    assert page.status_code == 200, page.text[:300]
    match = XSRF.search(page.text)
    assert match, page.text[:300]
    form = {
        "_xsrf": unescape(match.group(1) or match.group(2)),
        "username": user,
        "password": password or lab_password(user),
    }
    reply = http.post(f"{url}/hub/login", data=form, allow_redirects=False, timeout=30)
    assert reply.status_code == 302, reply.text[:500]
    return http


def request_server(http: requests.Session, url: str, user: str, profile: str) -> None:
    """Submit the spawn form for ``profile`` (does not wait for the server)."""
    page = http.get(f"{url}/hub/spawn/{user}", timeout=30)
    assert page.status_code == 200, page.text[:300]
    match = XSRF.search(page.text)
    assert match, page.text[:300]
    form = {"_xsrf": unescape(match.group(1) or match.group(2)), "profile": profile}
    reply = http.post(f"{url}/hub/spawn/{user}", data=form, allow_redirects=False, timeout=60)
    assert reply.status_code == 302, reply.text[:500]


def wait_for_server(url: str, user: str, timeout: float = 120.0) -> None:
    """Until the user's server answers through the proxy (its /api needs no login)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            reply = requests.get(f"{url}/user/{user}/api", allow_redirects=False, timeout=5)
            if reply.status_code == 200 and "version" in reply.text:
                return
        time.sleep(0.5)
    raise AssertionError(f"the server of {user} did not answer within {timeout:.0f} s")


def server_session(http: requests.Session, url: str, user: str) -> dict[str, str]:
    """Open the user's server (OAuth through the hub); headers for its API."""
    reply = http.get(f"{url}/user/{user}/lab", timeout=60)
    assert reply.status_code == 200, reply.text[:300]
    token = next(
        (c.value for c in http.cookies if c.name == "_xsrf" and c.path.startswith("/user/")),
        None,
    )
    assert token, [(c.name, c.path) for c in http.cookies]
    return {"X-XSRFToken": token}
