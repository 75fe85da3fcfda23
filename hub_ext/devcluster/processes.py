"""Running a pod's container as a local process: environment, volumes, pod IP, signals.

The development cluster has no container runtime. Each container's ``command`` + ``args`` run on
the host, in a new session (its own process group); without ``command`` the ``args`` alone are
the command line, as if the image's entrypoint were an exec wrapper such as ``tini --`` (the
image's own ENTRYPOINT is unknown). The process runs with:

- the pod's ``env`` and ``envFrom`` (``valueFrom`` secret, configMap, fieldRef and
  resourceFieldRef resolved, ``$(VAR)`` references expanded);
- its loopback pod IP (``127.x.y.z``) substituted for ``0.0.0.0`` in the args and env values,
  because every pod shares the host network and must listen on its own address only;
- every ``volumeMounts[].mountPath`` prefix in the args and env values (and ``workingDir``,
  ``HOME``) replaced by the host directory that backs the volume: a PersistentVolumeClaim is the
  directory ``<state_dir>/volumes/<namespace>/<claim>``, which outlives the pod like an RBD
  volume; emptyDir, configMap and secret volumes live in the pod's sandbox directory.

Stopping sends SIGTERM to the process group, waits the grace period, then sends SIGKILL. The
whole group is killed when the main process ends, so no descendant outlives its pod.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub_ext.devcluster.quantity import to_units

Obj = Mapping[str, Any]
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
_ANY_ADDRESS = re.compile(r"(?<![0-9.])0\.0\.0\.0(?![0-9]|\.[0-9])")
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


class ContainerConfigError(Exception):
    """The container cannot be started (a missing secret, no command, ...); kubelet wording."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one container process."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path


@dataclass
class Lookups:
    """Secrets and config maps of the pod's namespace, by name (``None`` when absent)."""

    secrets: dict[str, Obj | None] = field(default_factory=dict)
    configmaps: dict[str, Obj | None] = field(default_factory=dict)
    service_env: dict[str, str] = field(default_factory=dict)  # network.services.service_env


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the secrets and config maps that the pod's containers and volumes read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or []:
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
    return secrets, configmaps


def _object_data(obj: Obj | None, binary: bool) -> dict[str, str]:
    if obj is None:
        return {}
    out = {k: str(v) for k, v in (obj.get("stringData") or {}).items()}
    for key, value in (obj.get("data") or {}).items():
        out[key] = base64.b64decode(value).decode("utf-8", "replace") if binary else str(value)
    return out


def _field_ref(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": (pod.get("status") or {}).get("podIP"),
        "status.hostIP": (pod.get("status") or {}).get("hostIP"),
    }
    if path not in simple:
        raise ContainerConfigError(
            "CreateContainerConfigError", f"unsupported fieldRef fieldPath {path!r}"
        )
    return str(simple[path] or "")


def _resource_ref(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    values = (container.get("resources") or {}).get(kind) or {}
    if name not in values:
        return "0"
    divisor = to_units(name, ref.get("divisor", "1m" if name == "cpu" else "1"))
    return str(-(-to_units(name, values[name]) // max(divisor, 1)))


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
        return _field_ref(pod, str(source["fieldRef"].get("fieldPath", "")))
    if "resourceFieldRef" in source:
        return _resource_ref(container, source["resourceFieldRef"])
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

    sandbox: Path  # per pod run: emptyDir, configMap and secret volumes, default HOME/cwd
    volumes_root: Path  # <state_dir>/volumes: PVC directories, kept across pods


def prepare_volumes(pod: Obj, paths: PodPaths, lookups: Lookups) -> dict[str, Path]:
    """Create the host directory of every volume of the pod; returns volume name -> path."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    out: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", name)
            path = paths.volumes_root / namespace / claim
        else:
            path = paths.sandbox / "volumes" / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        files: dict[str, str] = {}
        if "secret" in volume:
            files = _object_data(lookups.secrets.get(volume["secret"].get("secretName", "")), True)
        elif "configMap" in volume:
            files = _object_data(lookups.configmaps.get(volume["configMap"].get("name", "")), False)
        for key, value in files.items():
            if "/" not in key and key not in (".", ".."):
                (path / key).write_text(value, encoding="utf-8")
        out[name] = path
    return out


def _substitute(value: str, pod_ip: str, mounts: list[tuple[str, str]]) -> str:
    """Replace 0.0.0.0 by the pod IP and every mount path (as a whole path prefix, wherever
    it appears: "/home/jovyan", "--dir=/home/jovyan/work", "open('/home/jovyan/x')") by the
    host directory of its volume. ``mounts`` is sorted longest path first."""
    value = _ANY_ADDRESS.sub(pod_ip, value)
    for mount_path, host_path in mounts:
        if mount_path == "/":
            continue
        pattern = re.compile(r"(?<![\w./-])" + re.escape(mount_path) + r"(?![\w.-])")
        value = pattern.sub(lambda _m, h=host_path: h, value)
    return value


def launch_spec(
    pod: Obj, container: Obj, env: Mapping[str, str], volumes: Mapping[str, Path], paths: PodPaths
) -> LaunchSpec:
    """Build the host command line, environment and working directory of a container."""
    pod_ip = str((pod.get("status") or {}).get("podIP") or "127.0.0.1")
    argv_raw = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv_raw:
        raise ContainerConfigError(
            "CreateContainerError",
            "the devcluster runs no images: the container needs a command or args "
            "to run on the host",
        )
    mounts = sorted(
        (
            (str(m.get("mountPath", "")).rstrip("/") or "/", str(volumes[m["name"]]))
            for m in container.get("volumeMounts") or []
            if m.get("name") in volumes and m.get("mountPath")
        ),
        key=lambda item: -len(item[0]),
    )
    full_env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    full_env["HOSTNAME"] = str((pod.get("metadata") or {}).get("name", ""))
    full_env["HOME"] = str(paths.sandbox / "home")
    full_env.update({k: _substitute(v, pod_ip, mounts) for k, v in env.items()})
    home_mount = next((h for m, h in mounts if m.startswith("/home/") or m == "/home"), None)
    if "HOME" not in env and home_mount:
        full_env["HOME"] = home_mount
    argv = tuple(_substitute(expand(str(a), full_env), pod_ip, mounts) for a in argv_raw)
    working_dir = container.get("workingDir")
    cwd = Path(_substitute(str(working_dir), pod_ip, mounts)) if working_dir else None
    if cwd is None or not cwd.is_dir():
        cwd = Path(home_mount) if home_mount else paths.sandbox / "home"
    Path(full_env["HOME"]).mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    executable = shutil.which(argv[0], path=full_env.get("PATH")) if argv else None
    if executable is None:
        raise ContainerConfigError(
            "StartError",
            f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH',
        )
    log_path = paths.sandbox / "container.log"
    return LaunchSpec((executable, *argv[1:]), full_env, cwd, log_path)


def _pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` when util-linux's setpriv is installed: Linux then kills
    the process if the emulator dies without stopping it (a safety net; a ``preexec_fn`` would
    do the same but makes every start a slow fork of the whole interpreter)."""
    setpriv = shutil.which("setpriv")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


_PDEATHSIG = _pdeathsig_prefix()


class PodProcess:
    """One container process in its own process group, its output appended to a log file."""

    def __init__(self, spec: LaunchSpec, on_output: Callable[[Path], None] | None = None) -> None:
        self.spec = spec
        self._proc: asyncio.subprocess.Process | None = None
        self._on_output = on_output

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spec.log_path, "ab", buffering=0) as log:
            self._proc = await asyncio.create_subprocess_exec(
                *_PDEATHSIG,
                *self.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.spec.cwd),
                env=dict(self.spec.env),
                start_new_session=True,
            )

    async def wait(self) -> int:
        """Wait for the main process; then kill what is left of its process group."""
        assert self._proc is not None
        code = await self._proc.wait()
        self._kill_group(signal.SIGKILL)
        return _exit_code(code)

    def _kill_group(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM the process group, wait up to the grace period, then SIGKILL."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._kill_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(max(grace_seconds, 0)):
                    await asyncio.shield(self._proc.wait())
            except TimeoutError:
                self._kill_group(signal.SIGKILL)
        code = await self._proc.wait()
        self._kill_group(signal.SIGKILL)
        return _exit_code(code)


def _exit_code(code: int) -> int:
    """Shell-style exit code: a process killed by signal N exits 128 + N, like in a container."""
    return 128 - code if code < 0 else code
