"""A pod's volumes on the host, and the mounts of each container.

Every volume gets a host directory: a PersistentVolumeClaim the directory
``<state_dir>/volumes/<namespace>/<claim>`` (it outlives the pod), ``hostPath`` the host path
itself (only under the cluster file's ``kubelet.allowedHostPaths``), every other kind a
directory in the pod's sandbox. ConfigMap, Secret, downwardAPI and projected volumes are written
as Kubernetes writes them: every key (or only ``items``, at their ``path``), with ``defaultMode``
or the item's ``mode``. :func:`container_mounts` then lists what appears where in the container
(``subPath``, ``readOnly``); :mod:`.runtime` mounts it in the container's mount namespace.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub_ext.devcluster.kubelet.downward import ContainerConfigError, field_ref, resource_ref
from hub_ext.devcluster.kubelet.images import KubeletConfig

Obj = Mapping[str, Any]
DEFAULT_MODE = 0o644
TOKEN_SECONDS = 3607


class VolumeError(Exception):
    """A volume that cannot be set up (kubelet event ``FailedMount``)."""

    def __init__(self, volume: str, message: str) -> None:
        self.message = f'MountVolume.SetUp failed for volume "{volume}" : {message}'
        super().__init__(self.message)


@dataclass(frozen=True)
class Mount:
    """One ``volumeMounts`` entry resolved: the host ``source`` appears at ``target``."""

    source: Path
    target: str
    read_only: bool = False


@dataclass
class Lookups:
    """Objects of the pod's namespace by name (``None`` when absent) and the ServiceAccount
    tokens by ``(audience, expirationSeconds)`` (``None`` when the API server issued none)."""

    secrets: dict[str, Obj | None] = field(default_factory=dict)
    configmaps: dict[str, Obj | None] = field(default_factory=dict)
    tokens: dict[tuple[str, int], str | None] = field(default_factory=dict)
    token_error: str = ""  # why the API server issued no token
    service_env: dict[str, str] = field(default_factory=dict)  # KUBERNETES_SERVICE_HOST ...


def object_data(obj: Obj | None, secret: bool) -> dict[str, bytes]:
    """The keys of a ConfigMap (data, binaryData) or Secret (data, stringData) as bytes."""
    if obj is None:
        return {}
    out: dict[str, bytes] = {}
    if secret:
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(value)
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value).encode()
    else:
        for key, value in (obj.get("binaryData") or {}).items():
            out[key] = base64.b64decode(value)
        for key, value in (obj.get("data") or {}).items():
            out[key] = str(value).encode()
    return out


def token_sources(pod: Obj) -> set[tuple[str, int]]:
    """The (audience, expirationSeconds) of every projected serviceAccountToken source."""
    out = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is not None:
                out.add((str(token.get("audience") or ""), _token_seconds(token)))
    return out


def _token_seconds(token: Obj) -> int:
    return int(token.get("expirationSeconds") or TOKEN_SECONDS)


def _check_path(path: str, where: str, volume: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts:
        raise VolumeError(volume, f"{where} {path!r} must be a relative path not containing '..'")
    return path


def _keys(
    volume: str, kind: str, name: str, source: Obj, lookups: Lookups
) -> list[tuple[str, bytes, int | None]]:
    secret = kind == "secret"
    table = lookups.secrets if secret else lookups.configmaps
    obj = table.get(name)
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return []
        raise VolumeError(volume, f'{kind} "{name}" not found')
    data = object_data(obj, secret)
    items = source.get("items")
    if not items:
        return [(key, value, None) for key, value in sorted(data.items())]
    out = []
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            noun = "Secret" if secret else "configmap"
            raise VolumeError(volume, f"{noun} references non-existent {kind} key: {key}")
        path = _check_path(str(item.get("path") or key), "items path", volume)
        out.append((path, data[key], item.get("mode")))
    return out


def _field(pod: Obj, path: str, volume: str) -> bytes:
    meta = pod.get("metadata") or {}
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items())).encode()
    try:
        return field_ref(pod, path).encode()
    except ContainerConfigError as exc:
        raise VolumeError(volume, exc.message) from exc


def _downward(pod: Obj, volume: str, items: list[Obj]) -> list[tuple[str, bytes, int | None]]:
    out = []
    for item in items:
        path = _check_path(str(item.get("path") or ""), "downwardAPI path", volume)
        if "fieldRef" in item:
            value = _field(pod, str(item["fieldRef"].get("fieldPath", "")), volume)
        else:
            ref = item.get("resourceFieldRef") or {}
            containers = (pod.get("spec") or {}).get("containers") or []
            name = ref.get("containerName") or (containers[0].get("name") if containers else "")
            container = next((c for c in containers if c.get("name") == name), {})
            value = resource_ref(container, ref).encode()
        out.append((path, value, item.get("mode")))
    return out


def _files(
    pod: Obj, volume: Obj, lookups: Lookups
) -> tuple[list[tuple[str, bytes, int | None]], int]:
    """(relative path, content, mode or None) of a configMap/secret/downwardAPI/projected
    volume, and its defaultMode."""
    name = str(volume.get("name", ""))
    if "configMap" in volume:
        src = volume["configMap"]
        return _keys(name, "configmap", str(src.get("name", "")), src, lookups), src.get(
            "defaultMode", DEFAULT_MODE
        )
    if "secret" in volume:
        src = volume["secret"]
        return _keys(name, "secret", str(src.get("secretName", "")), src, lookups), src.get(
            "defaultMode", DEFAULT_MODE
        )
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        return _downward(pod, name, src.get("items") or []), src.get("defaultMode", DEFAULT_MODE)
    projected = volume["projected"]
    files: list[tuple[str, bytes, int | None]] = []
    for source in projected.get("sources") or []:
        if "configMap" in source:
            src = source["configMap"]
            files += _keys(name, "configmap", str(src.get("name", "")), src, lookups)
        elif "secret" in source:
            src = source["secret"]
            files += _keys(name, "secret", str(src.get("name", "")), src, lookups)
        elif "downwardAPI" in source:
            files += _downward(pod, name, source["downwardAPI"].get("items") or [])
        elif "serviceAccountToken" in source:
            src = source["serviceAccountToken"]
            key = (str(src.get("audience") or ""), _token_seconds(src))
            token = lookups.tokens.get(key)
            if token is None:
                sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
                why = f": {lookups.token_error}" if lookups.token_error else ""
                raise VolumeError(
                    name,
                    f'failed to fetch token for ServiceAccount "{sa}" (TokenRequest, POST '
                    f"serviceaccounts/{sa}/token){why}",
                )
            files.append(
                (
                    _check_path(str(src.get("path", "token")), "token path", name),
                    token.encode(),
                    None,
                )
            )
    return files, projected.get("defaultMode", DEFAULT_MODE)


def _write(directory: Path, files: list[tuple[str, bytes, int | None]], default_mode: int) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o755)
    os.chmod(directory, 0o755)  # noqa: S103 - world-readable like the kubelet's volume directories
    for rel, content, mode in files:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(content)
        os.chmod(path, int(mode if mode is not None else default_mode) & 0o7777)


def prepare_volumes(
    pod: Obj, sandbox: Path, volumes_root: Path, lookups: Lookups, config: KubeletConfig
) -> dict[str, Path]:
    """Create (or refresh) the host directory of every volume; returns name -> host path."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    out: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume.get("name", ""))
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", name)
            path = volumes_root / namespace / claim
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        elif "hostPath" in volume:
            host = str(volume["hostPath"].get("path", ""))
            if not config.host_path_allowed(host):
                raise VolumeError(
                    name,
                    f"hostPath {host!r} is not allowed: the cluster file's "
                    "kubelet.allowedHostPaths must list it (or a directory above it)",
                )
            path = Path(host)
            kind = volume["hostPath"].get("type") or ""
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True, mode=0o755)
            elif not path.exists():
                raise VolumeError(name, f"hostPath type check failed: {host} does not exist")
        elif any(k in volume for k in ("configMap", "secret", "downwardAPI", "projected")):
            path = sandbox / "volumes" / name
            files, mode = _files(pod, volume, lookups)
            _write(path, files, int(mode))
        else:  # emptyDir (and kinds the emulator has no backend for: an empty directory)
            path = sandbox / "volumes" / name
            path.mkdir(parents=True, exist_ok=True, mode=0o777)
        out[name] = path
    return out


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> list[Mount]:
    """The container's ``volumeMounts`` as host source -> path in the container, parents first."""
    mounts = []
    for m in container.get("volumeMounts") or []:
        name = str(m.get("name", ""))
        target = posixpath.normpath(str(m.get("mountPath", "")))
        if name not in volumes or not target.startswith("/"):
            continue
        source = volumes[name]
        sub = str(m.get("subPath") or "")
        if sub:
            source = source / _check_path(sub, "subPath", name)
            if not source.exists():
                source.mkdir(parents=True, mode=0o755)  # as the kubelet does
        mounts.append(Mount(source, target, bool(m.get("readOnly"))))
    return sorted(mounts, key=lambda item: item.target.count("/") if item.target != "/" else 0)
