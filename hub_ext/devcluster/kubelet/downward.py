"""Values of the pod and its containers as the downward API gives them (env and volumes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hub_ext.devcluster.quantity import to_units

Obj = Mapping[str, Any]


class ContainerConfigError(Exception):
    """The container cannot be started (a missing secret, no command, ...); kubelet wording."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def field_ref(pod: Obj, path: str) -> str:
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


def resource_ref(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    values = (container.get("resources") or {}).get(kind) or {}
    if name not in values:
        return "0"
    divisor = to_units(name, ref.get("divisor", "1m" if name == "cpu" else "1"))
    return str(-(-to_units(name, values[name]) // max(divisor, 1)))
