"""``kubectl get`` columns of workloads, Services, Endpoints and budgets, as kubectl prints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int]


def _age(obj: Obj, now: datetime) -> str:
    from hub_ext.devcluster.api_tables import age

    return age(obj["metadata"].get("creationTimestamp"), now)


def _st(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _deployment(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    return [
        obj["metadata"]["name"],
        f"{_st(obj, 'readyReplicas')}/{spec.get('replicas', 1)}",
        _st(obj, "updatedReplicas"),
        _st(obj, "availableReplicas"),
        _age(obj, now),
    ]


def _replicaset(obj: Obj, now: datetime) -> list[Any]:
    return [
        obj["metadata"]["name"],
        (obj.get("spec") or {}).get("replicas", 1),
        _st(obj, "replicas"),
        _st(obj, "readyReplicas"),
        _age(obj, now),
    ]


def _daemonset(obj: Obj, now: datetime) -> list[Any]:
    selector = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector")
    return [
        obj["metadata"]["name"],
        _st(obj, "desiredNumberScheduled"),
        _st(obj, "currentNumberScheduled"),
        _st(obj, "numberReady"),
        _st(obj, "updatedNumberScheduled"),
        _st(obj, "numberAvailable"),
        ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>",
        _age(obj, now),
    ]


def _statefulset(obj: Obj, now: datetime) -> list[Any]:
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    return [obj["metadata"]["name"], f"{_st(obj, 'readyReplicas')}/{replicas}", _age(obj, now)]


def _job(obj: Obj, now: datetime) -> list[Any]:
    from hub_ext.devcluster.controllers.jobs import finished

    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    state = finished(obj) or ("Suspended" if spec.get("suspend") else "Running")
    completions = spec.get("completions")
    wanted = completions if completions is not None else "1"
    start, end = status.get("startTime"), status.get("completionTime")
    duration = ""
    if start:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        stop = datetime.strptime(end, fmt) if end else now.replace(tzinfo=None)
        duration = f"{max(0, int((stop - datetime.strptime(start, fmt)).total_seconds()))}s"
    return [
        obj["metadata"]["name"],
        state,
        f"{_st(obj, 'succeeded')}/{wanted}",
        duration,
        _age(obj, now),
    ]


def _cronjob(obj: Obj, now: datetime) -> list[Any]:
    from hub_ext.devcluster.api_tables import age

    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    last = status.get("lastScheduleTime")
    return [
        obj["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "True" if spec.get("suspend") else "False",
        len(status.get("active") or []),
        age(last, now) if last else "<none>",
        _age(obj, now),
    ]


def _service(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    ports = []
    for port in spec.get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress)
    if not external:
        external = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    return [
        obj["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _age(obj, now),
    ]


def _endpoints(obj: Obj, now: datetime) -> list[Any]:
    found = [
        f"{a['ip']}:{p['port']}"
        for s in obj.get("subsets") or []
        for a in s.get("addresses") or []
        for p in s.get("ports") or []
    ]
    text = ",".join(found[:3]) + (f" + {len(found) - 3} more..." if len(found) > 3 else "")
    return [obj["metadata"]["name"], text or "<none>", _age(obj, now)]


def _pdb(obj: Obj, now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    return [
        obj["metadata"]["name"],
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        _st(obj, "disruptionsAllowed"),
        _age(obj, now),
    ]


def _crd(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp") or ""]


def _cols(*names: str) -> list[Column]:
    integer = {"Up-to-date", "Available", "Desired", "Current", "Active", "Allowed Disruptions"}
    return [(n, "integer" if n in integer else "string", 0) for n in names]


WORKLOAD_LAYOUTS: dict[str, tuple[list[Column], Any]] = {
    "deployments.apps": (_cols("Name", "Ready", "Up-to-date", "Available", "Age"), _deployment),
    "replicasets.apps": (_cols("Name", "Desired", "Current", "Ready", "Age"), _replicaset),
    "daemonsets.apps": (
        _cols(
            "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"
        ),
        _daemonset,
    ),
    "statefulsets.apps": (_cols("Name", "Ready", "Age"), _statefulset),
    "jobs.batch": (_cols("Name", "Status", "Completions", "Duration", "Age"), _job),
    "cronjobs.batch": (
        _cols("Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"),
        _cronjob,
    ),
    "services": (
        _cols("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"),
        _service,
    ),
    "endpoints": (_cols("Name", "Endpoints", "Age"), _endpoints),
    "poddisruptionbudgets.policy": (
        _cols("Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"),
        _pdb,
    ),
    "customresourcedefinitions.apiextensions.k8s.io": (_cols("Name", "Created At"), _crd),
}
