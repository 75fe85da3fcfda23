"""Process bookkeeping for the demo: one demo per state directory, free ports, no leftovers.

The demo starts slapd, JupyterHub (which starts configurable-http-proxy and the idle culler) and
the development cluster's pod processes (which start kernels), each in its own session. Ctrl-C
only reaches the demo process, so the demo itself must find and stop all of them:

- :class:`PidFile` records the running demo in ``<state>/demo.pid``; a second demo on the same
  state refuses to start, and a pid file left by a killed demo is recognised as stale;
- :func:`descendants` snapshots every process started below the demo (across sessions);
- :func:`strays` finds processes that a killed demo left behind: they run in (or name) the
  state directory and, being started in new sessions, have no controlling terminal (so a shell
  that the user opened in a home directory is left alone);
- :func:`terminate` sends SIGTERM, waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil  # type: ignore[import-untyped]


class DemoError(Exception):
    """A problem the user can fix; the message is one line that says what to do."""


def port_free(ip: str, port: int) -> bool:
    """Whether ``ip:port`` can be bound now (port 0 is always free)."""
    if port == 0:
        return True
    with socket.socket() as sock:
        try:
            sock.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


class PidFile:
    """``<state>/demo.pid`` holding the pid of the running demo."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "demo.pid"

    def running_pid(self) -> int | None:
        """The pid of a live demo using this state directory, or None (stale files ignored)."""
        try:
            pid = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid == os.getpid():
            return None
        try:
            proc = psutil.Process(pid)
            cmdline = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        if proc.status() == psutil.STATUS_ZOMBIE or "demo" not in cmdline:
            return None
        return pid

    def acquire(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            raise DemoError(
                f"a LabHub demo is already running with state {self.path.parent} (pid {pid}); "
                f"stop it with Ctrl-C or 'kill {pid}', or use another --state-dir"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(self.path.read_text().strip()) == os.getpid():
                self.path.unlink()


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Every live process below ``pid`` (default: this process), across sessions."""
    try:
        return list(psutil.Process(pid or os.getpid()).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def strays(state_dir: Path) -> list[psutil.Process]:
    """Processes of this user that run in or name ``state_dir`` (not this one or its parents)."""
    root = str(state_dir.resolve())
    uid = os.getuid()
    mine = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline", "cwd", "terminal"]):
        info = proc.info
        if info["pid"] in mine or info["uids"] is None or info["uids"].real != uid:
            continue
        if info.get("terminal"):  # a shell or editor of the user, never one of ours (no tty)
            continue
        cwd = info.get("cwd") or ""
        cmdline = info.get("cmdline") or []
        if _is_under(cwd, root) or any(root in arg for arg in cmdline):
            found.append(proc)
    return found


def terminate(procs: list[psutil.Process], timeout: float = 10.0) -> list[int]:
    """SIGTERM ``procs``, wait up to ``timeout`` s, SIGKILL the rest; the pids that were alive."""
    alive = [p for p in procs if _alive(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, rest = psutil.wait_procs(alive, timeout=timeout)
    for proc in rest:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(rest, timeout=5)
    return [p.pid for p in alive]


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` (ignores a group that is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a process started with ``start_new_session=True``, SIGKILL it after ``timeout`` s,
    then SIGKILL whatever is left of its process group (a proxy it started, for example)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    kill_group(proc.pid)


async def stop_process_async(proc: asyncio.subprocess.Process, timeout: float) -> None:
    """:func:`stop_process` for a process started with ``asyncio.create_subprocess_exec``."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    kill_group(proc.pid)
