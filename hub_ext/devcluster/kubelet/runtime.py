"""Starting a container in its own mount namespace (the emulator's container runtime).

A container with volume mounts (or whose ``HOME`` or working directory does not exist on the
host) starts through :mod:`.nsinit`: a new mount namespace, as root directly, as a normal user
inside a new user namespace that maps the user to itself. There its volumes are bind-mounted at
their ``mountPath`` (``subPath``, ``readOnly``), and a process reads
``/usr/local/etc/jupyterhub/jupyterhub_config.py`` at the path it has in its image. Everything
else is the host's root filesystem, so the host's binaries run. ``pods/exec`` and exec probes
enter the same namespace (:func:`enter_argv`). Each container also gets the pod's hosts file
at ``/etc/hosts`` (:func:`hosts_mount`), as the kubelet manages it, so that
``<svc>.<ns>.svc.cluster.local`` resolves to the Service's cluster IP inside the pod.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    """``mounts`` with the pod's hosts file (written to the sandbox) at ``/etc/hosts``, unless
    the container mounts a volume there itself (then, as with the kubelet, the volume wins)."""
    if any(m.target in (HOSTS, "/etc") for m in mounts):
        return mounts
    path = sandbox / "etc-hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)
    hosts = Mount(path, HOSTS)
    return sorted([hosts, *mounts], key=lambda m: m.target.count("/") if m.target != "/" else 0)


def needs_namespace(mounts: tuple[Mount, ...], cwd: Path, home: str) -> bool:
    return bool(mounts) or not cwd.is_dir() or not Path(home).is_dir()


def wrap(
    argv: tuple[str, ...],
    mounts: tuple[Mount, ...],
    cwd: Path,
    home: str,
    workdir: Path,
    ready_fd: int | None = None,
) -> tuple[str, ...]:
    """The host command line that runs ``argv`` in a new mount namespace with ``mounts``.
    ``workdir`` is an empty directory of the pod's sandbox for this start of the container."""
    if workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
    scratch = workdir / "scratch"
    scratch.mkdir(parents=True, mode=0o700)
    spec = {
        "mounts": [
            {"source": str(m.source), "target": m.target, "readOnly": m.read_only} for m in mounts
        ],
        "dirs": [home, str(cwd)],
        "scratch": str(scratch),
        "cwd": str(cwd),
        "userns": userns(),
        "argv": list(argv),
        "readyFd": ready_fd,
    }
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return (sys.executable, "-S", str(NSINIT), str(spec_path))


def enter_argv(pid: int, argv: list[str], cwd: str | None = None) -> list[str]:
    """Run ``argv`` in the mount namespace (and working directory) of container process ``pid``."""
    nsenter = shutil.which("nsenter") or "nsenter"
    options = ["--target", str(pid), "--mount"]
    if userns():
        options += ["--user", "--preserve-credentials"]
    options.append(f"--wd={cwd}" if cwd else "--wd")
    return [nsenter, *options, "--", *argv]
