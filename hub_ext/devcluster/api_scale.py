"""The ``scale`` subresource (``autoscaling/v1`` ``Scale``) of Deployments, ReplicaSets and
StatefulSets, which ``kubectl scale`` reads and patches."""

from __future__ import annotations

import copy
from typing import Any

from hub_ext.devcluster.api_errors import Cause, invalid
from hub_ext.devcluster.api_objects import Objects, decode_body
from hub_ext.devcluster.patch import PatchError, apply_patch
from hub_ext.devcluster.resources import ResourceType

Obj = dict[str, Any]


def _selector_text(selector: Obj) -> str:
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(spec.get("replicas", 1))},
        "status": {
            "replicas": int(status.get("replicas") or 0),
            "selector": _selector_text(spec.get("selector") or {}),
        },
    }


def scale(
    objects: Objects, rtype: ResourceType, ns: str, name: str, method: str, body: tuple[str, bytes]
) -> Obj:
    """GET, PUT or PATCH ``<resource>/<name>/scale``."""
    obj = objects.existing(rtype, ns, name)
    current = scale_of(obj)
    if method == "GET":
        return current
    content_type, raw = body
    if method == "PUT":
        wanted = decode_body(raw)
    else:
        try:
            wanted = apply_patch(content_type, copy.deepcopy(current), decode_body(raw))
        except (LookupError, PatchError, ValueError, TypeError) as exc:
            raise invalid("Scale", name, [Cause("patch", str(exc))], "autoscaling") from exc
    replicas = (
        ((wanted or {}).get("spec") or {}).get("replicas") if isinstance(wanted, dict) else None
    )
    if not isinstance(replicas, int) or replicas < 0:
        raise invalid(
            "Scale",
            name,
            [
                Cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            ],
            "autoscaling",
        )
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = replicas
    return scale_of(objects.update(rtype, ns, name, new, None))
