"""Defaulting and validation of objects, per resource type, the way the API server does it.

Only the parts that clients of the emulator observe are modelled: DNS-1123 names, required
pod, PVC and service fields, pod and PVC defaults (phase, restart policy, grace period, DNS
policy, QoS class, default tolerations), the immutability of a pod's spec after creation
(``spec.schedulingGates`` may only shrink) and Secret ``stringData``.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

from hub_ext.devcluster.api_errors import Cause, invalid
from hub_ext.devcluster.api_metadata import metadata_causes, resource_causes
from hub_ext.devcluster.resources import ResourceType

Obj = dict[str, Any]
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAMED = frozenset({"namespaces", "services"})
DEFAULT_TOLERATIONS = [
    {
        "key": f"node.kubernetes.io/{taint}",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    }
    for taint in ("not-ready", "unreachable")
]
MUTABLE_POD_SPEC = frozenset({"activeDeadlineSeconds", "tolerations", "schedulingGates"})


def name_problem(name: str, label: bool) -> str | None:
    if label:
        if len(name) > 63 or not _LABEL_RE.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', start and end with an alphanumeric character, at most 63 characters"
            )
        return None
    if len(name) > 253 or not _SUBDOMAIN_RE.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def validate_metadata(rtype: ResourceType, obj: Obj) -> None:
    """Labels and annotations (keys and values) as Kubernetes checks them."""
    causes = metadata_causes(obj.get("metadata") or {})
    if causes:
        name = (obj.get("metadata") or {}).get("name") or ""
        raise invalid(rtype.kind, name, causes, rtype.group)


def validate_name(rtype: ResourceType, obj: Obj) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        cause = Cause("metadata.name", "name or generateName is required", "FieldValueRequired")
        raise invalid(rtype.kind, "", [cause], rtype.group)
    if rtype.group == "rbac.authorization.k8s.io":  # RBAC names are path segments
        bad = name in (".", "..") or "/" in name or "%" in name
        problem = "may not be '.' or '..' and may not contain '/' or '%'" if bad else None
    else:
        problem = name_problem(name, rtype.plural in LABEL_NAMED)
    if problem:
        raise invalid(
            rtype.kind,
            name,
            [Cause("metadata.name", f'Invalid value: "{name}": {problem}')],
            rtype.group,
        )


def _qos_class(spec: Obj) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_any = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for kind in ("cpu", "memory"):
            if kind not in lim or str(req.get(kind, lim[kind])) != str(lim[kind]):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_container(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image") or "")
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    latest = image.endswith(":latest") or not tagged
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    res = c.setdefault("resources", {})
    limits = res.get("limits") or {}
    if limits:
        requests = res.setdefault("requests", {})
        for key, value in limits.items():
            requests.setdefault(key, value)
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = account
    tolerations = spec.setdefault("tolerations", [])
    for default in DEFAULT_TOLERATIONS:
        if not any(t.get("key") == default["key"] for t in tolerations):
            tolerations.append(copy.deepcopy(default))
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)


def validate_pod_spec(name: str, spec: Any) -> None:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        raise invalid("Pod", name, [Cause("spec", "Required value", "FieldValueRequired")])
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(Cause("spec.containers", "Required value", "FieldValueRequired"))
    seen: set[str] = set()
    for field, items in (
        ("containers", containers),
        ("initContainers", spec.get("initContainers")),
    ):
        for i, c in enumerate(items if isinstance(items, list) else []):
            where = f"spec.{field}[{i}]"
            if not isinstance(c, dict):
                causes.append(Cause(where, "must be an object", "FieldValueInvalid"))
                continue
            cname = c.get("name") or ""
            if not cname:
                causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
            elif name_problem(cname, label=True):
                causes.append(Cause(f"{where}.name", f'Invalid value: "{cname}"'))
            elif cname in seen:
                causes.append(
                    Cause(f"{where}.name", f'Duplicate value: "{cname}"', "FieldValueDuplicate")
                )
            seen.add(cname)
            if not c.get("image"):
                causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            Cause(
                "spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
                "FieldValueNotSupported",
            )
        )
    for i, gate in enumerate(spec.get("schedulingGates") or []):
        if not isinstance(gate, dict) or not gate.get("name"):
            causes.append(
                Cause(f"spec.schedulingGates[{i}].name", "Required value", "FieldValueRequired")
            )
    if causes:
        raise invalid("Pod", name, causes)


def validate_pod_resources(name: str, spec: Obj) -> None:
    causes: list[Cause] = []
    for field in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(field) or []):
            causes += resource_causes(f"spec.{field}[{i}].resources", c.get("resources"))
    if causes:
        raise invalid("Pod", name, causes)


def _validate_pvc(name: str, obj: Obj) -> None:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    if not spec.get("accessModes"):
        causes.append(Cause("spec.accessModes", "Required value", "FieldValueRequired"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if not storage:
        causes.append(Cause("spec.resources[storage]", "Required value", "FieldValueRequired"))
    else:
        causes += resource_causes("spec.resources", spec.get("resources"))
    if causes:
        raise invalid("PersistentVolumeClaim", name, causes)


def _validate_service(name: str, obj: Obj) -> None:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    ports = spec.get("ports")
    if spec.get("clusterIP") != "None" and not ports and spec.get("type") != "ExternalName":
        causes.append(Cause("spec.ports", "Required value", "FieldValueRequired"))
    for i, port in enumerate(ports or []):
        if not isinstance(port.get("port"), int):
            causes.append(Cause(f"spec.ports[{i}].port", "Required value", "FieldValueRequired"))
    if causes:
        raise invalid("Service", name, causes)


def prepare_create(rtype: ResourceType, obj: Obj, next_ip: str) -> None:
    """Default and validate a new object in place (raises ApiError 422)."""
    name = obj["metadata"]["name"]
    kind = rtype.key
    if kind == "pods":
        validate_pod_spec(name, obj.get("spec"))
        default_pod_spec(obj["spec"])
        validate_pod_resources(name, obj["spec"])
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj["spec"])}
    elif kind == "persistentvolumeclaims":
        _validate_pvc(name, obj)
        obj["spec"].setdefault("volumeMode", "Filesystem")
        obj["status"] = {"phase": "Pending"}
    elif kind == "persistentvolumes":
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif kind == "services":
        _validate_service(name, obj)
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = next_ip
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif kind == "secrets":
        obj.setdefault("type", "Opaque")
        fold_string_data(obj)
    elif kind == "nodes":
        obj.setdefault("spec", {})


def fold_string_data(obj: Obj) -> None:
    """Move Secret ``stringData`` into base64 ``data`` like the API server does."""
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {}) or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def validate_update(rtype: ResourceType, old: Obj, new: Obj) -> None:
    """Refuse the updates Kubernetes refuses (pod spec immutability)."""
    if rtype.key == "secrets":
        fold_string_data(new)
    if rtype.key != "pods":
        return
    name = old["metadata"]["name"]
    old_spec, new_spec = old.get("spec") or {}, new.get("spec")
    validate_pod_spec(name, new_spec)
    default_pod_spec(new_spec)
    old_gates = [g.get("name") for g in old_spec.get("schedulingGates") or []]
    new_gates = [g.get("name") for g in new_spec.get("schedulingGates") or []]
    if any(g not in old_gates for g in new_gates):
        raise invalid(
            "Pod",
            name,
            [
                Cause(
                    "spec.schedulingGates",
                    "Forbidden: only deletion is allowed, but found new scheduling gate",
                    "FieldValueForbidden",
                )
            ],
        )
    gated = bool(old_spec.get("schedulingGates"))
    if gated and _scheduling_directives_added(old_spec, new_spec):
        # a gated pod may gain node selectors and node affinity (KEP-3838)
        old_spec = _without_directives(old_spec)
        new_spec = _without_directives(new_spec)
    if _strip_mutable(old_spec) != _strip_mutable(new_spec):
        raise invalid(
            "Pod",
            name,
            [
                Cause(
                    "spec",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                    "existing tolerations), `spec.schedulingGates` (only deletion) or, while "
                    "the pod is gated, `spec.nodeSelector` and `spec.affinity.nodeAffinity` "
                    "(only additions)",
                    "FieldValueForbidden",
                )
            ],
        )


def _strip_mutable(spec: Obj) -> Obj:
    out = {k: v for k, v in spec.items() if k not in MUTABLE_POD_SPEC}
    for field in ("containers", "initContainers"):
        if field in out:
            out[field] = [{k: v for k, v in c.items() if k != "image"} for c in out[field]]
    return out


def _without_directives(spec: Obj) -> Obj:
    out = {k: v for k, v in spec.items() if k != "nodeSelector"}
    affinity = {k: v for k, v in (spec.get("affinity") or {}).items() if k != "nodeAffinity"}
    out.pop("affinity", None)
    if affinity:
        out["affinity"] = affinity
    return out


def _scheduling_directives_added(old: Obj, new: Obj) -> bool:
    """Whether ``new`` only adds node selectors and required node affinity to ``old``.

    Kubernetes' rules for a pod with scheduling gates: ``nodeSelector`` entries may be added,
    never changed; node affinity may be set when there is none; existing required terms may only
    gain match expressions or fields; preferred terms may change freely.
    """
    old_sel, new_sel = old.get("nodeSelector") or {}, new.get("nodeSelector") or {}
    if any(new_sel.get(k) != v for k, v in old_sel.items()):
        return False
    old_aff = (old.get("affinity") or {}).get("nodeAffinity")
    new_aff = (new.get("affinity") or {}).get("nodeAffinity")
    if not old_aff:
        return True
    if not new_aff:
        return False
    key = "requiredDuringSchedulingIgnoredDuringExecution"
    old_terms = (old_aff.get(key) or {}).get("nodeSelectorTerms") or []
    new_terms = (new_aff.get(key) or {}).get("nodeSelectorTerms") or []
    if not old_terms:
        return True
    if len(old_terms) != len(new_terms):
        return False
    for before, after in zip(old_terms, new_terms, strict=True):
        for field in ("matchExpressions", "matchFields"):
            kept = before.get(field) or []
            if (after.get(field) or [])[: len(kept)] != kept:
                return False
    return True
