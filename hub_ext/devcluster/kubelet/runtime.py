"""Starting a container in its own mount namespace (the emulator's container runtime).

A container with volume mounts (or whose ``HOME`` or working directory does not exist on the
host) starts through :mod:`.nsinit`, run in the forked child before the exec (:func:`init`): a
new mount namespace, as root directly, as a normal user inside a new user namespace that maps
the user to itself (a start costs one fork of the kubelet, no second interpreter). There its
volumes are bind-mounted at their ``mountPath`` (``subPath``, ``readOnly``), and a process reads
``/usr/local/etc/jupyterhub/jupyterhub_config.py`` at the path it has in its image. Everything
else is the host's root filesystem, so the host's binaries run. ``pods/exec`` and exec probes
enter the same namespace (:func:`enter_argv`). Each container also gets the pod's hosts file
at ``/etc/hosts`` (:func:`hosts_mount`), as the kubelet manages it, so that
``<svc>.<ns>.svc.cluster.local`` resolves to the Service's cluster IP inside the pod.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hub_ext.devcluster.kubelet import nsinit
from hub_ext.devcluster.kubelet.volumes import Mount

NSINIT = Path(__file__).with_name("nsinit.py")


class RuntimeUnavailable(OSError):
    """Mount namespaces cannot be created here; the message says what to do."""


def userns() -> bool:
    """Whether containers need a user namespace (the emulator does not run as root)."""
    return os.geteuid() != 0


@functools.cache
def check() -> None:
    """Fail early, with what to do, where this kernel or user cannot create the namespaces."""
    if shutil.which("nsenter") is None:
        raise RuntimeUnavailable(
            "the devcluster needs nsenter (util-linux) for pods/exec and exec probes: "
            "install util-linux"
        )
    script = (
        "import ctypes,os,sys;l=ctypes.CDLL(None,use_errno=True);"
        f"f={0x10000000 | 0x20000 if userns() else 0x20000};"
        "sys.exit(0 if l.unshare(f)==0 else ctypes.get_errno())"
    )
    result = subprocess.run([sys.executable, "-S", "-c", script], check=False)
    if result.returncode != 0:
        what = "a user and mount namespace" if userns() else "a mount namespace"
        raise RuntimeUnavailable(
            f"the devcluster cannot create {what} for its containers "
            f"({os.strerror(result.returncode)}): run it as root, or allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 and "
            "user.max_user_namespaces > 0; on Ubuntu also "
            "kernel.apparmor_restrict_unprivileged_userns=0)"
        )


HOSTS = "/etc/hosts"


def hosts_mount(sandbox: Path, content: str, mounts: list[Mount]) -> list[Mount]:
    """``mounts`` with the pod's hosts file at ``/etc/hosts`` (written to the sandbox when the
    container starts, off the event loop), unless the container mounts a volume there itself
    (then, as with the kubelet, the volume wins)."""
    if any(m.target in (HOSTS, "/etc") for m in mounts):
        return mounts
    hosts = Mount(sandbox / "etc-hosts", HOSTS, content=content)
    return sorted([hosts, *mounts], key=lambda m: m.target.count("/") if m.target != "/" else 0)


def _write_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")  # containers start at once
    tmp.write_text(content, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


def needs_namespace(mounts: tuple[Mount, ...], cwd: Path, home: str) -> bool:
    return bool(mounts) or not cwd.is_dir() or not Path(home).is_dir()


def init(
    argv: tuple[str, ...], mounts: tuple[Mount, ...], cwd: Path, home: str, workdir: Path
) -> Callable[[], None]:
    """The ``preexec_fn`` that puts the forked child in a new mount namespace with ``mounts``
    and ``cwd`` before it execs ``argv``; the child also gets SIGKILL when the kubelet dies.
    ``workdir`` is an empty directory of the pod's sandbox for this start of the container."""
    for m in mounts:
        if m.content is not None:
            _write_file(m.source, m.content)
    if workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
    scratch = workdir / "scratch"
    scratch.mkdir(parents=True, mode=0o700)
    spec: dict[str, Any] = {
        "mounts": [
            {"source": str(m.source), "target": m.target, "readOnly": m.read_only} for m in mounts
        ],
        "dirs": [home, str(cwd)],
        "scratch": str(scratch),
        "cwd": str(cwd),
        "userns": userns(),
        "argv": list(argv),
    }
    parent = os.getpid()
    return functools.partial(nsinit.child, spec, parent)


#: The threads that fork the containers: a fork (and the container init, which runs before the
#: exec) never holds up the event loop, and several containers start at once. The threads live
#: as long as the process, as the parent-death signal of the containers they forked requires.
_LAUNCHER = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="devcluster-launcher")


class Child:
    """A started container process: its output as a stream, its exit through a pidfd."""

    def __init__(self, popen: subprocess.Popen[bytes], stdout: asyncio.StreamReader) -> None:
        self._popen = popen
        self.stdout = stdout
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        code = self._popen.poll()
        if code is None:
            return
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(code)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


async def launch(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    make_init: Callable[[], Callable[[], None]] | None = None,
) -> Child:
    """Start ``argv`` in a new session, its output (stdout and stderr) in :attr:`Child.stdout`.
    ``make_init`` (run in a launcher thread, as it writes to the sandbox) returns the function
    that runs in the child before the exec (see :func:`init`)."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            env=dict(env),
            start_new_session=True,
            preexec_fn=make_init() if make_init else None,  # fork-safe: no imports or locks
        )

    loop = asyncio.get_running_loop()
    started = loop.run_in_executor(_LAUNCHER, start)
    try:
        popen = await asyncio.shield(started)
    except asyncio.CancelledError:  # cancelled while starting: leave nothing behind
        started.add_done_callback(_abandon)
        raise
    assert popen.stdout is not None
    reader = asyncio.StreamReader(limit=2**16)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
    return Child(popen, reader)


def _abandon(started: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if started.cancelled() or started.exception() is not None:
        return
    popen = started.result()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    _LAUNCHER.submit(popen.communicate)  # reap it, close its pipe


def enter_argv(pid: int, argv: list[str], cwd: str | None = None) -> list[str]:
    """Run ``argv`` in the mount namespace (and working directory) of container process ``pid``."""
    nsenter = shutil.which("nsenter") or "nsenter"
    options = ["--target", str(pid), "--mount"]
    if userns():
        options += ["--user", "--preserve-credentials"]
    options.append(f"--wd={cwd}" if cwd else "--wd")
    return [nsenter, *options, "--", *argv]
