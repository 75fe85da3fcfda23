"""Projected volumes and the API server's address, as a kubelet provides them to a pod.

A ``serviceAccountToken`` source is filled the way a kubelet fills it: a TokenRequest to the API
server for the pod's ServiceAccount, bound to the pod, with the source's audience and
expiration (the token is requested once, when the pod starts; it is not rotated). ``configMap``,
``secret`` and ``downwardAPI`` sources are written from the objects the kubelet fetched.
``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` point at the API server's HTTPS
port, whose certificate the ``ca.crt`` of the ServiceAccount volume verifies.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hub_ext.devcluster.auth.tokens import API_AUDIENCES

Obj = dict[str, Any]
TokenKey = tuple[str, str]  # (volume name, path in the volume)


def token_sources(pod: Obj) -> list[tuple[TokenKey, list[str], int]]:
    """((volume, path), audiences, expirationSeconds) of every serviceAccountToken source."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if isinstance(token, dict):
                audience = token.get("audience")
                audiences = [audience] if audience else list(API_AUDIENCES)
                seconds = int(token.get("expirationSeconds") or 3600)
                out.append(
                    ((volume.get("name", ""), token.get("path", "token")), audiences, seconds)
                )
    return out


def token_request_body(pod: Obj, audiences: list[str], seconds: int) -> Obj:
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
            },
        },
    }


def referenced(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the secrets and config maps that projected volumes read."""
    secrets: set[str] = set()
    configmaps: set[str] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                secrets.add(source["secret"].get("name", ""))
            if "configMap" in source:
                configmaps.add(source["configMap"].get("name", ""))
    return secrets, configmaps


def _items(obj: Obj | None, source: Obj, binary: bool) -> dict[str, str]:
    if obj is None:
        return {}
    data = {k: str(v) for k, v in (obj.get("stringData") or {}).items()}
    for key, value in (obj.get("data") or {}).items():
        data[key] = base64.b64decode(value).decode("utf-8", "replace") if binary else str(value)
    items = source.get("items")
    if not items:
        return data
    return {i.get("path", i.get("key", "")): data[i["key"]] for i in items if i.get("key") in data}


def _field(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, table in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values = meta.get(table) or {}
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(values.get(path[len(prefix) + 2 : -2], ""))
    return ""


def projected_files(
    pod: Obj,
    volume: Obj,
    secrets: Mapping[str, Obj | None],
    configmaps: Mapping[str, Obj | None],
    tokens: Mapping[TokenKey, str],
) -> dict[str, str]:
    """Relative path -> content of a projected volume."""
    files: dict[str, str] = {}
    name = volume.get("name", "")
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "serviceAccountToken" in source:
            path = source["serviceAccountToken"].get("path", "token")
            if (name, path) in tokens:
                files[path] = tokens[(name, path)]
        elif "configMap" in source:
            ref = source["configMap"]
            files.update(_items(configmaps.get(ref.get("name", "")), ref, False))
        elif "secret" in source:
            ref = source["secret"]
            files.update(_items(secrets.get(ref.get("name", "")), ref, True))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                ref = item.get("fieldRef") or {}
                files[item.get("path", "")] = _field(pod, str(ref.get("fieldPath", "")))
    return files


def write_files(directory: Path, files: Mapping[str, str], mode: int = 0o644) -> None:
    """Write ``files`` below ``directory``; paths that would leave it are skipped."""
    for relative, content in files.items():
        parts = relative.split("/")
        if not relative or relative.startswith("/") or ".." in parts or "" in parts:
            continue
        target = directory.joinpath(*parts)
        if len(parts) > 1:
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        target.chmod(mode)


def service_env(secure_url: str) -> dict[str, str]:
    """The variables a kubelet sets for the ``kubernetes`` Service (the API server)."""
    if not secure_url:
        return {}
    parts = urlsplit(secure_url)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 443)
    address = f"tcp://{host}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": address,
        "KUBERNETES_PORT_443_TCP": address,
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": port,
        "KUBERNETES_PORT_443_TCP_ADDR": host,
    }
