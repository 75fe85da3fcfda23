"""Running a pod's container as a local process: command line, environment, pod IP, signals.

The development cluster has no container runtime. A container's command line follows
Kubernetes' rules: ``command`` replaces the image's ENTRYPOINT and ``args`` its CMD, where the
image's entrypoint and cmd come from the cluster file's image map (:mod:`.images`). The process
runs the host binary in a new session (its own process group), in its own mount namespace where
its volumes appear at their ``mountPath`` (:mod:`.runtime`), with:

- the pod's ``env`` and ``envFrom`` (``valueFrom`` secret, configMap, fieldRef and
  resourceFieldRef resolved, ``$(VAR)`` references expanded);
- ``HOME`` from the env, else the image map's ``home``, else a directory in the pod's sandbox;
- its loopback pod IP (``127.x.y.z``) substituted for ``0.0.0.0`` in the args and env values,
  because every pod shares the host network and must listen on its own address only.

Stopping sends SIGTERM to the process group, waits the grace period, then sends SIGKILL. The
whole group is killed when the main process ends, so no descendant outlives its pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub_ext.devcluster.kubelet import runtime
from hub_ext.devcluster.kubelet.downward import ContainerConfigError, field_ref, resource_ref
from hub_ext.devcluster.kubelet.images import (
    ImageEntry,
    ImagePullError,
    KubeletConfig,
    container_argv,
)
from hub_ext.devcluster.kubelet.volumes import Lookups, Mount, object_data

__all__ = ["ContainerConfigError", "LaunchSpec", "Lookups", "PodPaths", "PodProcess"]

Obj = Mapping[str, Any]
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
_ANY_ADDRESS = re.compile(r"(?<![0-9.])0\.0\.0\.0(?![0-9]|\.[0-9])")
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one container process."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path  # inside the container
    log_path: Path
    mounts: tuple[Mount, ...] = ()


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the secrets and config maps that the pod's containers and volumes read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"].get("name", ""))
            if "configMapKeyRef" in source:
                configmaps.add(source["configMapKeyRef"].get("name", ""))
        for env_from in container.get("envFrom") or []:
            if "secretRef" in env_from:
                secrets.add(env_from["secretRef"].get("name", ""))
            if "configMapRef" in env_from:
                configmaps.add(env_from["configMapRef"].get("name", ""))
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            secrets.add(volume["secret"].get("secretName", ""))
        if "configMap" in volume:
            configmaps.add(volume["configMap"].get("name", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                secrets.add(source["secret"].get("name", ""))
            if "configMap" in source:
                configmaps.add(source["configMap"].get("name", ""))
    return secrets, configmaps


def _object_data(obj: Obj | None, binary: bool) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in object_data(obj, binary).items()}


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known variables are replaced, ``$$`` escapes ``$``."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(repl, value)


def container_env(pod: Obj, container: Obj, lookups: Lookups) -> dict[str, str]:
    """The container's environment as Kubernetes would set it (without the host base): the
    Service variables first, then ``envFrom``, then ``env``."""
    env: dict[str, str] = dict(lookups.service_env)
    for env_from in container.get("envFrom") or []:
        prefix = env_from.get("prefix") or ""
        for kind, table, binary in (
            ("secretRef", lookups.secrets, True),
            ("configMapRef", lookups.configmaps, False),
        ):
            if kind in env_from:
                ref = env_from[kind]
                obj = table.get(ref.get("name", ""))
                if obj is None and not ref.get("optional"):
                    what = "secret" if binary else "configmap"
                    raise ContainerConfigError(
                        "CreateContainerConfigError", f'{what} "{ref.get("name")}" not found'
                    )
                for key, value in _object_data(obj, binary).items():
                    env[prefix + key] = value
    for item in container.get("env") or []:
        name = item.get("name", "")
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        value = _value_from(pod, container, item["valueFrom"], lookups)
        if value is not None:
            env[name] = value
    return env


def _value_from(pod: Obj, container: Obj, source: Obj, lookups: Lookups) -> str | None:
    if "fieldRef" in source:
        return field_ref(pod, str(source["fieldRef"].get("fieldPath", "")))
    if "resourceFieldRef" in source:
        return resource_ref(container, source["resourceFieldRef"])
    for kind, table, binary, what in (
        ("secretKeyRef", lookups.secrets, True, "secret"),
        ("configMapKeyRef", lookups.configmaps, False, "configmap"),
    ):
        if kind in source:
            ref = source[kind]
            obj = table.get(ref.get("name", ""))
            data = _object_data(obj, binary)
            key = ref.get("key", "")
            if key in data:
                return data[key]
            if ref.get("optional"):
                return None
            if obj is None:
                message = f'{what} "{ref.get("name")}" not found'
            else:
                message = f"couldn't find key {key} in {what.capitalize()} {ref.get('name')}"
            raise ContainerConfigError("CreateContainerConfigError", message)
    raise ContainerConfigError("CreateContainerConfigError", "unsupported env valueFrom source")


@dataclass(frozen=True)
class PodPaths:
    """Host directories for one pod."""

    sandbox: Path  # per pod run: emptyDir, configMap and secret volumes, default HOME
    volumes_root: Path  # <state_dir>/volumes: PVC directories, kept across pods


def launch_spec(
    pod: Obj,
    container: Obj,
    env: Mapping[str, str],
    mounts: Sequence[Mount],
    paths: PodPaths,
    config: KubeletConfig,
) -> LaunchSpec:
    """Build the command line, environment and working directory of a container: the image
    map's entrypoint/cmd under Kubernetes' command/args rules, ``$(VAR)`` expanded, 0.0.0.0
    replaced by the pod IP. Paths are those inside the container (see :mod:`.runtime`)."""
    pod_ip = str((pod.get("status") or {}).get("podIP") or "127.0.0.1")
    try:
        argv_raw = container_argv(container, config)
    except ImagePullError as exc:
        raise ContainerConfigError(exc.reason, exc.message) from exc
    entry = config.image(str(container.get("image") or "")) or ImageEntry()
    full_env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    full_env["HOSTNAME"] = str((pod.get("metadata") or {}).get("name", ""))
    full_env["HOME"] = entry.home or str(paths.sandbox / "home")
    full_env.update({k: _ANY_ADDRESS.sub(pod_ip, v) for k, v in env.items()})
    argv = tuple(_ANY_ADDRESS.sub(pod_ip, expand(str(a), full_env)) for a in argv_raw)
    cwd = str(container.get("workingDir") or entry.working_dir or full_env["HOME"])
    if full_env["HOME"].startswith(str(paths.sandbox)):
        Path(full_env["HOME"]).mkdir(parents=True, exist_ok=True)
    executable = shutil.which(argv[0], path=full_env.get("PATH")) if argv else None
    if executable is None:
        raise ContainerConfigError(
            "StartError",
            f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH',
        )
    log_path = paths.sandbox / "container.log"
    return LaunchSpec((executable, *argv[1:]), full_env, Path(cwd), log_path, tuple(mounts))


def _pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` when util-linux's setpriv is installed: Linux then kills
    the process if the emulator dies without stopping it (a safety net; a ``preexec_fn`` would
    do the same but makes every start a slow fork of the whole interpreter)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


_PDEATHSIG = _pdeathsig_prefix()


class PodProcess:
    """One container process in its own process group, its output appended to a log file."""

    def __init__(self, spec: LaunchSpec, workdir: Path | None = None) -> None:
        self.spec = spec
        self.workdir = workdir or spec.log_path.parent / "init" / spec.log_path.stem
        self._proc: asyncio.subprocess.Process | None = None
        self._copier: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv, cwd = spec.argv, spec.cwd
        ready: tuple[int, int] | None = None
        if runtime.needs_namespace(spec.mounts, spec.cwd, spec.env.get("HOME", "/")):
            home = spec.env.get("HOME", "/")
            ready = os.pipe()
            argv = runtime.wrap(argv, spec.mounts, spec.cwd, home, self.workdir, ready[1])
            cwd = Path("/")
        try:
            await self._spawn(argv, cwd, ready[1] if ready else None)
        finally:
            if ready is not None:
                os.close(ready[1])
        if ready is not None:
            # the container init closes its end when it execs the command (or fails): from
            # then on its mounts are in place for exec, probes and hooks
            try:
                async with asyncio.timeout(30):
                    await asyncio.to_thread(os.read, ready[0], 1)
            except TimeoutError:
                pass
            except BaseException:  # cancelled while starting: leave nothing behind
                self._kill_group(signal.SIGKILL)
                raise
            finally:
                os.close(ready[0])

    async def _spawn(self, argv: tuple[str, ...], cwd: Path, fd: int | None) -> None:
        spec = self.spec
        self._proc = await asyncio.create_subprocess_exec(
            *_PDEATHSIG,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd),
            env=dict(spec.env),
            start_new_session=True,
            pass_fds=(fd,) if fd is not None else (),
        )
        assert self._proc.stdout is not None
        self._copier = asyncio.create_task(_copy_log(self._proc.stdout, spec.log_path))

    async def wait(self) -> int:
        """Wait for the main process; then kill what is left of its process group."""
        assert self._proc is not None
        code = await self._proc.wait()
        self._kill_group(signal.SIGKILL)
        await self.flush()
        return _exit_code(code)

    async def flush(self) -> None:
        """Wait (briefly) until the output is in the log file."""
        if self._copier is not None:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(self._copier)

    async def close(self) -> None:
        """Wait for the last output, then end the log copier."""
        if self._copier is None:
            return
        await self.flush()
        if not self._copier.done():
            self._copier.cancel()
        await asyncio.gather(self._copier, return_exceptions=True)

    def _kill_group(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM the process group, wait up to the grace period, then SIGKILL."""
        if self._proc is None:  # not started (yet)
            return 137
        if self._proc.returncode is None:
            self._kill_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(max(grace_seconds, 0)):
                    await asyncio.shield(self._proc.wait())
            except TimeoutError:
                self._kill_group(signal.SIGKILL)
        code = await self._proc.wait()
        self._kill_group(signal.SIGKILL)
        await self.flush()
        return _exit_code(code)


async def _copy_log(stream: asyncio.StreamReader, path: Path) -> None:
    """Append the output to ``path``, each line after its RFC 3339 timestamp (CRI style)."""
    with open(path, "ab", buffering=0) as log:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the stream limit: take what is there
                line = await stream.read(65536)
            if not line:
                return
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            log.write(stamp + b" " + line)


def _exit_code(code: int) -> int:
    """Shell-style exit code: a process killed by signal N exits 128 + N, like in a container."""
    return 128 - code if code < 0 else code
