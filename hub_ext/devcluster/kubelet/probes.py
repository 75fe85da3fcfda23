"""Container probes as the kubelet runs them: httpGet, tcpSocket and exec.

:func:`probe_once` runs one check and returns ``(ok, message)``, the message worded like the
kubelet's event (``Readiness probe failed: Get "http://...": dial tcp ...: connection
refused``). :class:`ProbeState` counts successes and failures against ``successThreshold`` and
``failureThreshold``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from hub_ext.devcluster.kubelet import runtime

Obj = Mapping[str, Any]


@dataclass
class ProbeState:
    """Consecutive results of one probe of one container."""

    probe: Obj
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None until the thresholds decide

    @property
    def initial_delay(self) -> float:
        return float(self.probe.get("initialDelaySeconds") or 0)

    @property
    def period(self) -> float:
        return float(self.probe.get("periodSeconds") or 10)

    @property
    def timeout(self) -> float:
        return float(self.probe.get("timeoutSeconds") or 1)

    def record(self, ok: bool) -> bool | None:
        """Count one result; returns the new decided result when it changed."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if (
                self.successes >= int(self.probe.get("successThreshold") or 1)
                and self.result is not True
            ):
                self.result = True
                return True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if (
                self.failures >= int(self.probe.get("failureThreshold") or 3)
                and self.result is not False
            ):
                self.result = False
                return False
        return None


def _port(value: Any, container: Obj) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port.get("containerPort"))
    raise ValueError(f"unknown port name {value!r}")


async def probe_once(
    probe: Obj, container: Obj, pod_ip: str, pid: int | None, cwd: str | None = None
) -> tuple[bool, str]:
    """Run one probe; (success, failure output or message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            return await _http(probe["httpGet"], container, pod_ip, timeout)
        if "tcpSocket" in probe:
            return await _tcp(probe["tcpSocket"], container, pod_ip, timeout)
        if "exec" in probe:
            return await _exec(probe["exec"], pid, cwd, timeout)
    except ValueError as exc:
        return False, str(exc)
    return False, "the probe has no handler: give httpGet, tcpSocket or exec"


async def _http(action: Obj, container: Obj, pod_ip: str, timeout: float) -> tuple[bool, str]:
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    path = str(action.get("path") or "/")
    path = path if path.startswith("/") else "/" + path
    url = f"{scheme}://{host}:{_port(action.get('port'), container)}{path}"
    headers = {"User-Agent": "kube-probe/1.33", "Accept": "*/*"}
    headers.update({h["name"]: h.get("value", "") for h in action.get("httpHeaders") or []})
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, headers=headers, ssl=False, allow_redirects=False) as resp,
        ):
            if 200 <= resp.status < 400:
                return True, ""
            body = (await resp.content.read(10240)).decode("utf-8", "replace")
            return False, f"HTTP probe failed with statuscode: {resp.status}" + (
                f": {body}" if body else ""
            )
    except TimeoutError:
        detail = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        return False, f'Get "{url}": {detail}'
    except (aiohttp.ClientError, OSError) as exc:
        return False, f'Get "{url}": dial tcp {host}: connect: {_reason(exc)}'


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", None) or exc
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
        return "connection refused"
    return getattr(cause, "strerror", None) or str(cause)


async def _tcp(action: Obj, container: Obj, pod_ip: str, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or pod_ip
    port = _port(action.get("port"), container)
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, ""
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: connect: {_reason(exc)}"


async def _exec(action: Obj, pid: int | None, cwd: str | None, timeout: float) -> tuple[bool, str]:
    command = [str(c) for c in action.get("command") or []]
    if not command or pid is None:
        return False, "the exec probe has no command"
    argv = runtime.enter_argv(pid, command, cwd)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False, f"command {command!r} timed out"
    text = out.decode("utf-8", "replace")
    if proc.returncode == 0:
        return True, text
    return False, text or f"command {command!r} exited with {proc.returncode}"


Reporter = Callable[[str, bool, str], Any]
