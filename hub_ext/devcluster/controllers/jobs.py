"""The Job controller: runs pods until ``completions`` succeed or ``backoffLimit`` is passed.

Up to ``parallelism`` pods run at once. A Job without ``completions`` (a work queue) is complete
once a pod succeeded and none is active. Failed pods are counted and replaced after a back-off
that doubles per failure (1 s, 2 s, 4 s ... at most 60 s; Kubernetes starts at 10 s). The
conditions are Kubernetes': ``SuccessCriteriaMet`` then ``Complete`` (reason
``CompletionsReached``), ``FailureTarget`` then ``Failed`` (``BackoffLimitExceeded``,
``DeadlineExceeded`` for ``activeDeadlineSeconds``), ``Suspended`` for ``spec.suspend``.
Finished Jobs are deleted ``ttlSecondsAfterFinished`` after they finished. Pods are kept
(``kubectl logs job/x`` reads them) and deleted with the Job. ``completionMode: Indexed``,
pod failure policies and success policies are not emulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.labels import is_active, is_ready
from hub_ext.devcluster.controllers.replicasets import pod_from_template

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "jobs.batch"
COMPONENT = "job-controller"


def finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _cond(kind: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _expire(m: ControllerManager, job: Obj) -> None:
    from hub_ext.devcluster.controllers.manager import parse_time

    ttl = job["spec"].get("ttlSecondsAfterFinished")
    if ttl is None:
        return
    status = job.get("status") or {}
    done = parse_time(status.get("completionTime")) or parse_time(
        next(
            (
                c.get("lastTransitionTime")
                for c in status.get("conditions") or []
                if c.get("type") in ("Complete", "Failed")
            ),
            None,
        )
    )
    meta = job["metadata"]
    if done is None:
        return
    if done + int(ttl) <= m.now():
        m.delete(KEY, meta["namespace"], meta["name"])
    else:
        m.requeue_after((KEY, meta["namespace"], meta["name"]), done + int(ttl) - m.now())


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    from hub_ext.devcluster.controllers.manager import iso, parse_time

    job = m.get(KEY, ns, name)
    if job is None or job["metadata"].get("deletionTimestamp"):
        return
    if finished(job):
        _expire(m, job)
        return
    spec = job["spec"]
    now = m.now()
    stamp = iso(now)
    pods = m.owned(job, "pods")
    succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
    failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
    active = [p for p in pods if is_active(p)]
    old = job.get("status") or {}
    status: Obj = {
        "active": len(active),
        "succeeded": succeeded,
        "failed": failed,
        "ready": sum(1 for p in active if is_ready(p)),
        "terminating": sum(1 for p in pods if p["metadata"].get("deletionTimestamp")),
        "uncountedTerminatedPods": {},
        "conditions": [c for c in old.get("conditions") or [] if c.get("type") != "Suspended"],
    }
    for field in ("active", "succeeded", "failed"):
        if not status[field]:
            del status[field]
    if spec.get("suspend"):
        for pod in active:
            m.delete("pods", ns, pod["metadata"]["name"])
        status["conditions"].append(_cond("Suspended", "JobSuspended", "Job suspended", stamp))
        status.pop("active", None)
        m.set_status(KEY, job, status)
        return
    status["startTime"] = old.get("startTime") or stamp
    started = parse_time(status["startTime"]) or now
    completions = spec.get("completions")
    failure: tuple[str, str] | None = None
    deadline = spec.get("activeDeadlineSeconds")
    if failed > int(spec.get("backoffLimit", 6)):
        failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    elif deadline is not None and started + int(deadline) <= now:
        failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
    elif deadline is not None:
        m.requeue_after((KEY, ns, name), started + int(deadline) - now)
    if failure is not None:
        for pod in active:
            m.delete("pods", ns, pod["metadata"]["name"])
        status["conditions"] += [
            _cond("FailureTarget", *failure, stamp),
            _cond("Failed", *failure, stamp),
        ]
        status.pop("active", None)
        m.set_status(KEY, job, status)
        m.event(job, failure[0], failure[1], COMPONENT, warning=True)
        return
    done = succeeded >= completions if completions is not None else succeeded > 0 and not active
    if done:
        message = "Reached expected number of succeeded pods"
        status["conditions"] += [
            _cond("SuccessCriteriaMet", "CompletionsReached", message, stamp),
            _cond("Complete", "CompletionsReached", message, stamp),
        ]
        status["completionTime"] = stamp
        m.set_status(KEY, job, status)
        m.event(job, "Completed", "Job completed", COMPONENT)
        return
    parallelism = int(spec.get("parallelism", 1))
    want = parallelism if completions is None else min(parallelism, int(completions) - succeeded)
    if completions is None and succeeded:
        want = 0  # a work queue: once one pod succeeded, no new pods start
    memory = m.memory.setdefault("job-failures", {})
    seen_failed, retry_at = memory.get(job["metadata"]["uid"], (0, 0.0))
    if failed > seen_failed:
        retry_at = now + min(60.0, 2.0 ** (failed - 1))
        memory[job["metadata"]["uid"]] = (failed, retry_at)
    if len(active) < want and retry_at > now:
        m.requeue_after((KEY, ns, name), retry_at - now)
    elif len(active) < want:
        for _ in range(want - len(active)):
            created = m.create("pods", ns, pod_from_template(job, spec["template"]))
            if created is not None:
                m.event(
                    job,
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    COMPONENT,
                )
                status["active"] = status.get("active", 0) + 1
    elif len(active) > want:
        for pod in active[want:]:
            m.delete("pods", ns, pod["metadata"]["name"])
    m.set_status(KEY, job, status)
