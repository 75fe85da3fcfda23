"""The CronJob controller: creates a Job at each time the schedule fires.

The schedule is evaluated in ``spec.timeZone`` (UTC by default) against the controller
manager's clock. When several times were missed only the latest one runs; a time later than
``startingDeadlineSeconds`` is skipped. ``concurrencyPolicy``: ``Allow`` runs Jobs side by side,
``Forbid`` skips a time while a Job is active, ``Replace`` deletes the active Jobs first. Jobs are
named ``<cronjob>-<minutes since the epoch of the scheduled time>`` and carry the annotation
``batch.kubernetes.io/cronjob-scheduled-timestamp``. Finished Jobs beyond
``successfulJobsHistoryLimit`` and ``failedJobsHistoryLimit`` are deleted, oldest first.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.cron import CronError, due_times, parse_schedule
from hub_ext.devcluster.controllers.jobs import finished
from hub_ext.devcluster.controllers.labels import owner_reference

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "cronjobs.batch"
JOBS = "jobs.batch"
COMPONENT = "cronjob-controller"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def _ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": meta["uid"],
    }


def _job_body(cj: Obj, scheduled: float) -> Obj:
    from hub_ext.devcluster.controllers.manager import iso

    template = copy.deepcopy(cj["spec"].get("jobTemplate") or {})
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{cj['metadata']['name']}-{int(scheduled // 60)}",
            "labels": dict(meta.get("labels") or {}),
            "annotations": {**(meta.get("annotations") or {}), SCHEDULED: iso(scheduled)},
            "ownerReferences": [owner_reference(cj)],
        },
        "spec": template.get("spec") or {},
    }


def _history(m: ControllerManager, cj: Obj, jobs: list[Obj]) -> None:
    spec = cj["spec"]
    for outcome, limit in (
        ("Complete", spec.get("successfulJobsHistoryLimit", 3)),
        ("Failed", spec.get("failedJobsHistoryLimit", 1)),
    ):
        done = [j for j in jobs if finished(j) == outcome]
        for job in done[: max(0, len(done) - int(limit))]:
            m.delete(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
            m.event(cj, "SuccessfulDelete", f"Deleted job {job['metadata']['name']}", COMPONENT)


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    from hub_ext.devcluster.controllers.manager import iso, parse_time

    cj = m.get(KEY, ns, name)
    if cj is None or cj["metadata"].get("deletionTimestamp"):
        return
    spec = cj["spec"]
    now = m.now()
    jobs = sorted(
        m.owned(cj, JOBS),
        key=lambda j: (j["metadata"].get("annotations") or {}).get(SCHEDULED, ""),
    )
    active = [j for j in jobs if not finished(j) and not j["metadata"].get("deletionTimestamp")]
    status = copy.deepcopy(cj.get("status") or {})
    successful = [
        (j.get("status") or {}).get("completionTime") for j in jobs if finished(j) == "Complete"
    ]
    if any(successful):
        status["lastSuccessfulTime"] = max(s for s in successful if s)
    if not spec.get("suspend"):
        try:
            schedule = parse_schedule(str(spec.get("schedule", "")))
        except CronError:
            schedule = None
        since = (
            parse_time(status.get("lastScheduleTime"))
            or parse_time(cj["metadata"].get("creationTimestamp"))
            or now
        )
        times = due_times(schedule, spec.get("timeZone"), since, now) if schedule else []
        if times:
            scheduled = times[-1]
            deadline = spec.get("startingDeadlineSeconds")
            policy = spec.get("concurrencyPolicy", "Allow")
            if deadline is not None and now - scheduled > int(deadline):
                m.event(
                    cj,
                    "MissSchedule",
                    f"Missed scheduled time to start a job: {iso(scheduled)}",
                    COMPONENT,
                    warning=True,
                )
                status["lastScheduleTime"] = iso(scheduled)
            elif policy == "Forbid" and active:
                pass  # tried again on the next tick, until the deadline passes
            else:
                if policy == "Replace":
                    for job in active:
                        m.delete(JOBS, ns, job["metadata"]["name"])
                        m.event(
                            cj,
                            "SuccessfulDelete",
                            f"Deleted job {job['metadata']['name']}",
                            COMPONENT,
                        )
                    active = []
                created = m.create(JOBS, ns, _job_body(cj, scheduled))
                if created is not None:
                    active.append(created)
                    m.event(
                        cj,
                        "SuccessfulCreate",
                        f"Created job {created['metadata']['name']}",
                        COMPONENT,
                    )
                status["lastScheduleTime"] = iso(scheduled)
    if active:
        status["active"] = [_ref(j) for j in active]
    else:
        status.pop("active", None)
    m.set_status(KEY, cj, status)
    _history(m, cj, jobs)
