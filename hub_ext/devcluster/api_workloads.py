"""Defaults and validation of workload, policy and service objects, as the API server applies them.

:func:`prepare` runs on every create and on every update of the spec (defaults are only filled in
where a field is missing). Validation messages follow Kubernetes' field paths and wording.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from hub_ext.devcluster import crds
from hub_ext.devcluster.api_errors import Cause, invalid
from hub_ext.devcluster.controllers.cron import CronError, parse_schedule
from hub_ext.devcluster.controllers.labels import selector_matches
from hub_ext.devcluster.network.services import allocate_node_ports
from hub_ext.devcluster.resources import ResourceType
from hub_ext.devcluster.store import Store

Obj = dict[str, Any]


def _go_map(labels: Obj) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def _template_causes(obj: Obj, restart_policies: tuple[str, ...] | None = None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    selector = spec.get("selector")
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return [Cause("spec.template.spec.containers", "Required value", "FieldValueRequired")]
    if not (template["spec"].get("containers")):
        causes.append(
            Cause("spec.template.spec.containers", "Required value", "FieldValueRequired")
        )
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
    elif not selector_matches(selector, labels):
        causes.append(
            Cause(
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    if restart_policies is not None:
        policy = template["spec"].get("restartPolicy", "Always")
        if policy not in restart_policies:
            wanted = ", ".join(f'"{p}"' for p in restart_policies)
            if len(restart_policies) == 1:
                message = f'Unsupported value: "{policy}": supported values: {wanted}'
                reason = "FieldValueNotSupported"
            else:
                message = f"Required value: valid values: {wanted}"
                reason = "FieldValueRequired"
            causes.append(Cause("spec.template.spec.restartPolicy", message, reason))
    return causes


def _check(rtype: ResourceType, obj: Obj, causes: list[Cause]) -> None:
    if causes:
        raise invalid(rtype.kind, obj["metadata"].get("name") or "", causes, rtype.group)


def _deployment(rtype: ResourceType, obj: Obj) -> None:
    _check(rtype, obj, _template_causes(obj, ("Always",)))
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    elif strategy["type"] != "Recreate":
        _check(
            rtype,
            obj,
            [
                Cause(
                    "spec.strategy.type",
                    f'Unsupported value: "{strategy["type"]}": supported values: "Recreate", '
                    '"RollingUpdate"',
                    "FieldValueNotSupported",
                )
            ],
        )


def _replicaset(rtype: ResourceType, obj: Obj) -> None:
    _check(rtype, obj, _template_causes(obj, ("Always",)))
    obj["spec"].setdefault("replicas", 1)


def _daemonset(rtype: ResourceType, obj: Obj) -> None:
    _check(rtype, obj, _template_causes(obj, ("Always",)))
    spec = obj["spec"]
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)


def _statefulset(rtype: ResourceType, obj: Obj) -> None:
    _check(rtype, obj, _template_causes(obj, ("Always",)))
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})


def _job(rtype: ResourceType, obj: Obj, creating: bool) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and creating and not spec.get("manualSelector"):
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
    _check(rtype, obj, _template_causes(obj, ("OnFailure", "Never")))
    spec = obj["spec"]
    if spec.get("parallelism") is None and spec.get("completions") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)


def _cronjob(rtype: ResourceType, obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        _check(rtype, obj, [Cause("spec.schedule", "Required value", "FieldValueRequired")])
        return
    causes: list[Cause] = []
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(Cause("spec.schedule", "Required value", "FieldValueRequired"))
    else:
        try:
            parse_schedule(str(schedule))
        except CronError as exc:
            causes.append(Cause("spec.schedule", f'Invalid value: "{schedule}": {exc}'))
    zone = spec.get("timeZone")
    if zone is not None:
        try:
            zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            causes.append(
                Cause("spec.timeZone", f'Invalid value: "{zone}": unknown time zone {zone}')
            )
    policy = spec.setdefault("concurrencyPolicy", "Allow")
    if policy not in ("Allow", "Forbid", "Replace"):
        causes.append(
            Cause(
                "spec.concurrencyPolicy",
                f'Unsupported value: "{policy}": supported values: "Allow", "Forbid", "Replace"',
                "FieldValueNotSupported",
            )
        )
    if not isinstance((spec.get("jobTemplate") or {}).get("spec"), dict):
        causes.append(
            Cause(
                "spec.jobTemplate.spec.template.spec.containers",
                "Required value",
                "FieldValueRequired",
            )
        )
    _check(rtype, obj, causes)
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def _pdb(rtype: ResourceType, obj: Obj) -> None:
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        _check(
            rtype,
            obj,
            [Cause("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set")],
        )


def prepare(rtype: ResourceType, obj: Obj, store: Store, creating: bool, now: str) -> None:
    """Default and validate ``obj`` in place (raises the 422 ``ApiError`` Kubernetes would)."""
    key = rtype.key
    if key == "deployments.apps":
        _deployment(rtype, obj)
    elif key == "replicasets.apps":
        _replicaset(rtype, obj)
    elif key == "daemonsets.apps":
        _daemonset(rtype, obj)
    elif key == "statefulsets.apps":
        _statefulset(rtype, obj)
    elif key == "jobs.batch":
        _job(rtype, obj, creating)
    elif key == "cronjobs.batch":
        _cronjob(rtype, obj)
    elif key == "poddisruptionbudgets.policy":
        _pdb(rtype, obj)
    elif key == "services":
        allocate_node_ports(obj, store)
    elif key == crds.CRD_KEY:
        crds.prepare(obj, now)
