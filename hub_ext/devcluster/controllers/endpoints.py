"""The endpoints controllers: Endpoints and EndpointSlices of each Service, from pod readiness.

For a Service with a selector, every pod of its namespace that matches, has a pod IP and has not
finished is an endpoint: ready when its ``Ready`` condition is ``True`` and it is not being
deleted (``addresses``), else not ready (``notReadyAddresses``; in the slice ``ready: false``,
``serving`` from the condition, ``terminating`` while it is deleted). A named ``targetPort`` is
resolved against the pod's container ports. One EndpointSlice per Service
(``<service>-<hash>``), labelled ``kubernetes.io/service-name`` and managed by
``endpointslice-controller.k8s.io``. Services without a selector are left alone (their
Endpoints are the user's).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.deployments import template_hash
from hub_ext.devcluster.controllers.labels import is_ready, labels_of, selector_matches

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
SLICES = "endpointslices.discovery.k8s.io"
MANAGED_BY = "endpointslice-controller.k8s.io"


def _target_port(port: Obj, pod: Obj) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target:
                return int(cport["containerPort"])
    return None


def _address(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {
        "ip": pod["status"]["podIP"],
        "nodeName": pod["spec"].get("nodeName"),
        "targetRef": {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
    }


def _endpoints_of(svc: Obj, pods: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(subsets, slice endpoints, slice ports)."""
    ports = (svc.get("spec") or {}).get("ports") or []
    groups: dict[tuple[tuple[Any, ...], ...], Obj] = {}
    slice_endpoints: list[Obj] = []
    slice_ports: list[Obj] | None = None
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        resolved = []
        for port in ports:
            number = _target_port(port, pod)
            if number is not None:
                resolved.append((port.get("name", ""), number, port.get("protocol", "TCP")))
        key = tuple(resolved)
        subset = groups.setdefault(
            key,
            {
                "addresses": [],
                "notReadyAddresses": [],
                "ports": [
                    {**({"name": n} if n else {}), "port": p, "protocol": proto}
                    for n, p, proto in key
                ],
            },
        )
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        ready = is_ready(pod) and not terminating
        subset["addresses" if ready else "notReadyAddresses"].append(_address(pod))
        slice_endpoints.append(
            {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {
                    "ready": ready,
                    "serving": is_ready(pod),
                    "terminating": terminating,
                },
                "nodeName": pod["spec"].get("nodeName"),
                "targetRef": _address(pod)["targetRef"],
            }
        )
        if slice_ports is None:
            slice_ports = subset["ports"]
    subsets = []
    for subset in groups.values():
        if not subset["ports"]:
            continue
        for field in ("addresses", "notReadyAddresses"):
            if not subset[field]:
                del subset[field]
        if subset.get("addresses") or subset.get("notReadyAddresses"):
            subsets.append(subset)
    return subsets, slice_endpoints, copy.deepcopy(slice_ports or [])


def _write(m: ControllerManager, key: str, ns: str, name: str, body: Obj) -> None:
    old = m.get(key, ns, name)
    if old is None:
        m.create(key, ns, body)
        return
    fields = [f for f in body if f not in ("metadata", "apiVersion", "kind")]
    same_labels = (old["metadata"].get("labels") or {}) == body["metadata"].get("labels", {})
    if same_labels and all(old.get(f) == body.get(f) for f in fields):
        return
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = body["metadata"].get("labels", {})
    for f in fields:
        new[f] = body[f]
    m.update(key, new)


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    svc = m.get("services", ns, name)
    slice_name = f"{name}-{template_hash({'service': name})[:5]}"
    if svc is None:
        for key, obj_name in (("endpoints", name), (SLICES, slice_name)):
            old = m.get(key, ns, obj_name)
            if old is not None and (
                key == "endpoints"
                or labels_of(old).get("endpointslice.kubernetes.io/managed-by") == MANAGED_BY
            ):
                m.delete(key, ns, obj_name)
        return
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return
    pods = [
        p
        for p in m.in_namespace("pods", ns)
        if selector_matches({"matchLabels": selector}, labels_of(p))
        and (p.get("status") or {}).get("podIP")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    subsets, endpoints, ports = _endpoints_of(svc, pods)
    labels = dict(labels_of(svc))
    ep_body: Obj = {"metadata": {"name": name, "labels": labels}, "subsets": subsets}
    _write(m, "endpoints", ns, name, ep_body)
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": name,
        "uid": svc["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    slice_body: Obj = {
        "metadata": {
            "name": slice_name,
            "labels": {
                **labels,
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
            "ownerReferences": [owner],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }
    _write(m, SLICES, ns, slice_name, slice_body)
