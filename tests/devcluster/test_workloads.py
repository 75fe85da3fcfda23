"""Deployments, Services, Jobs, CronJobs, DaemonSets and disruption budgets on the development
cluster, driven with kubectl and kubernetes_asyncio.

Readiness comes from the pod's ``Ready`` condition as the kubelet reports it: the web
Deployment's HTTP readiness probe sets it once the server answers. The tests flip it through
``pods/status`` where they need a pod that is running but not ready (what a failing readiness
probe reports).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from devcluster_helpers import kubectl
from kubernetes_asyncio.client import DiscoveryV1Api, PolicyV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from support import eventually
from workload_testing import Lab, command_pod_spec, http_get, lab, service, web_deployment

from hub_ext.devcluster.controllers.manager import iso
from hub_ext.devcluster.informer import request

__all__ = ["lab"]
pytestmark = pytest.mark.slow
MERGE = "application/merge-patch+json"


async def read(call: Any) -> Any:
    return await request(call(_preload_content=False))


async def pods_of(lab: Lab, selector: str) -> list[dict[str, Any]]:
    found = await request(
        lab.core.list_namespaced_pod("default", label_selector=selector, _preload_content=False)
    )
    return list(found["items"])


async def set_ready(lab: Lab, pod: dict[str, Any], ready: bool) -> None:
    """Report the pod (not) ready, as the kubelet does when its readiness probe changes."""
    conditions = [
        {**c, "status": "True" if ready else "False"}
        if c["type"] in ("Ready", "ContainersReady")
        else c
        for c in pod["status"]["conditions"]
    ]
    await request(
        lab.core.patch_namespaced_pod_status(
            pod["metadata"]["name"],
            "default",
            {"status": {"conditions": conditions}},
            _content_type=MERGE,
            _preload_content=False,
        )
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == kind)


async def test_a_deployment_rolls_out_behind_its_service(lab: Lab) -> None:
    kc = lab.kubeconfig
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    applied = await kubectl(
        kc, "apply", "-f", lab.manifest(web_deployment("web", "v1", **rolling), service("web"))
    )
    assert "deployment.apps/web created" in applied and "service/web created" in applied
    status = await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    assert 'deployment "web" successfully rolled out' in status
    dep = await read(lambda **kw: lab.apps.read_namespaced_deployment("web", "default", **kw))
    assert dep["status"]["availableReplicas"] == 2 and dep["status"]["observedGeneration"] == 1
    assert condition(dep, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(dep, "Progressing")["reason"] == "NewReplicaSetAvailable"
    svc = await read(lambda **kw: lab.core.read_namespaced_service("web", "default", **kw))
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("127.250.")

    async def endpoints(ready: int, not_ready: int = 0) -> dict[str, Any] | None:
        ep = await read(lambda **kw: lab.core.read_namespaced_endpoints("web", "default", **kw))
        subsets = ep.get("subsets") or [{}]
        got = (
            len(subsets[0].get("addresses") or []),
            len(subsets[0].get("notReadyAddresses") or []),
        )
        return ep if got == (ready, not_ready) else None

    ep = await eventually(lambda: endpoints(2), what="two ready endpoints")
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
    slices = await request(
        DiscoveryV1Api(lab.client).list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=web", _preload_content=False
        )
    )
    assert [e["conditions"]["ready"] for e in slices["items"][0]["endpoints"]] == [True, True]
    body = await eventually(lambda: http_get(ip, 8080), what="an answer through the service")
    assert body.startswith("v1 web-")
    # a pod that stops being ready leaves the endpoints and the deployment's availability
    first, second = await pods_of(lab, "app=web")
    await set_ready(lab, first, False)
    await eventually(lambda: endpoints(1, 1), what="one ready endpoint")

    async def unavailable() -> dict[str, Any] | None:
        d = await read(lambda **kw: lab.apps.read_namespaced_deployment("web", "default", **kw))
        return d if condition(d, "Available")["status"] == "False" else None

    dep = await eventually(unavailable, what="the deployment to lose availability")
    assert dep["status"]["availableReplicas"] == 1
    assert (
        condition(dep, "Available")["message"] == "Deployment does not have minimum availability."
    )
    for _ in range(6):
        answer = await eventually(lambda: http_get(ip, 8080), what="an answer")
        assert answer == f"v1 {second['metadata']['name']}"
    await set_ready(lab, first, True)
    await eventually(lambda: endpoints(2), what="both endpoints ready again")
    # a new template rolls out: a new ReplicaSet, the old one scaled to zero, two revisions
    await kubectl(kc, "apply", "-f", lab.manifest(web_deployment("web", "v2", **rolling)))
    status = await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    assert 'deployment "web" successfully rolled out' in status
    sets = await request(lab.apps.list_namespaced_replica_set("default", _preload_content=False))
    by_revision = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
        for rs in sets["items"]
    }
    assert sorted(by_revision) == ["1", "2"]
    assert by_revision["1"]["spec"]["replicas"] == 0 and by_revision["2"]["spec"]["replicas"] == 2
    assert by_revision["2"]["metadata"]["ownerReferences"][0]["name"] == "web"
    answer = await eventually(
        lambda: _starts(http_get(ip, 8080), "v2 "), what="the new version behind the service"
    )
    assert answer.startswith("v2 web-")
    history = await kubectl(kc, "rollout", "history", "deployment/web")
    assert "1 " in history and "2 " in history
    events = await kubectl(kc, "get", "events", "--field-selector", "involvedObject.name=web")
    assert "ScalingReplicaSet" in events
    # undo brings the first template back as revision 3, in its old ReplicaSet
    await kubectl(kc, "rollout", "undo", "deployment/web")
    await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    sets = await request(lab.apps.list_namespaced_replica_set("default", _preload_content=False))
    revisions = {
        rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in sets["items"]
    }
    assert revisions[by_revision["1"]["metadata"]["name"]] == "3"
    # a NodePort service is also reachable on 127.0.0.1:<nodePort>
    await kubectl(kc, "patch", "service", "web", "-p", '{"spec": {"type": "NodePort"}}')
    svc = await read(lambda **kw: lab.core.read_namespaced_service("web", "default", **kw))
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767 and svc["spec"]["clusterIP"] == ip
    body = await eventually(lambda: http_get("127.0.0.1", node_port), what="the node port")
    assert body.startswith("v1 web-")
    # foreground deletion removes the pods and the ReplicaSets before the Deployment
    out = await kubectl(kc, "delete", "deployment", "web", "--cascade=foreground", "--wait")
    assert 'deployment.apps "web" deleted' in out
    assert not (
        await request(lab.apps.list_namespaced_replica_set("default", _preload_content=False))
    )["items"]


async def _starts(body: Any, prefix: str) -> str | None:
    text = await body
    return text if text and text.startswith(prefix) else None


async def test_recreate_and_orphaned_replicasets(lab: Lab) -> None:
    kc = lab.kubeconfig
    await kubectl(kc, "apply", "-f", lab.manifest(web_deployment("old", "v1", 1, type="Recreate")))
    await kubectl(kc, "rollout", "status", "deployment/old", "--timeout=90s")
    await kubectl(kc, "set", "env", "deployment/old", "VERSION=v2")
    await kubectl(kc, "rollout", "status", "deployment/old", "--timeout=90s")
    pods = await pods_of(lab, "app=old")
    assert len(pods) == 1
    assert pods[0]["spec"]["containers"][0]["env"][0] == {"name": "VERSION", "value": "v2"}
    scaled = await kubectl(kc, "scale", "deployment/old", "--replicas=3")
    assert "deployment.apps/old scaled" in scaled
    await kubectl(kc, "rollout", "status", "deployment/old", "--timeout=90s")
    assert len(await pods_of(lab, "app=old")) == 3
    scale = json.loads(
        await kubectl(kc, "get", "--raw", "/apis/apps/v1/namespaces/default/deployments/old/scale")
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=old"
    out = await kubectl(kc, "delete", "deployment", "old", "--cascade=orphan")
    assert 'deployment.apps "old" deleted' in out
    sets = await request(lab.apps.list_namespaced_replica_set("default", _preload_content=False))
    assert sets["items"] and all("ownerReferences" not in rs["metadata"] for rs in sets["items"])
    assert len(await pods_of(lab, "app=old")) == 3


async def test_service_names_resolve_inside_pods_through_their_hosts_file(lab: Lab) -> None:
    kc = lab.kubeconfig
    await kubectl(kc, "apply", "-f", lab.manifest(web_deployment("web", "v7", 1), service("web")))
    await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    svc = await read(lambda **kw: lab.core.read_namespaced_service("web", "default", **kw))
    await asyncio.sleep(0.5)  # the kubelets' service caches follow their watch
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": command_pod_spec(
            "import socket, urllib.request\n"
            "name = 'web.default.svc.cluster.local'\n"
            "print('resolved', socket.gethostbyname(name), flush=True)\n"
            "print('body', urllib.request.urlopen(f'http://{name}:8080/', timeout=20).read()"
            ".decode(), flush=True)\n"
            "print('short', socket.gethostbyname('web'), flush=True)"
        ),
    }
    await kubectl(kc, "apply", "-f", lab.manifest(client))

    async def finished() -> str | None:
        pod = await read(lambda **kw: lab.core.read_namespaced_pod("client", "default", **kw))
        phase = (pod.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = await eventually(finished, timeout=60, what="the client pod to finish")
    logs = await kubectl(kc, "logs", "client")
    assert phase == "Succeeded", logs
    ip = svc["spec"]["clusterIP"]
    assert f"resolved {ip}" in logs and f"short {ip}" in logs
    assert "body v7" in logs


async def test_a_job_completes_and_a_failing_one_gives_up(lab: Lab) -> None:
    kc = lab.kubeconfig
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "grade"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": {
                "spec": command_pod_spec(
                    "import os; print('graded via', os.environ['GRADER_SERVICE_HOST'], "
                    "os.environ['GRADER_SERVICE_PORT'], flush=True)"
                )
            },
        },
    }
    failing = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "broken"},
        "spec": {
            "backoffLimit": 1,
            "template": {"spec": command_pod_spec("raise SystemExit(3)")},
        },
    }
    grader = await read(
        lambda **kw: lab.core.create_namespaced_service("default", service("grader", 9000), **kw)
    )
    await asyncio.sleep(0.5)  # the kubelets' service caches follow their watch
    await kubectl(kc, "apply", "-f", lab.manifest(job, failing))
    out = await kubectl(kc, "wait", "--for=condition=complete", "job/grade", "--timeout=90s")
    assert "condition met" in out
    done = await read(lambda **kw: lab.batch.read_namespaced_job("grade", "default", **kw))
    assert done["status"]["succeeded"] == 3 and "active" not in done["status"]
    assert condition(done, "Complete")["reason"] == "CompletionsReached"
    assert done["status"]["completionTime"]
    logs = await kubectl(kc, "logs", "job/grade")
    assert f"graded via {grader['spec']['clusterIP']} 9000" in logs
    assert "Complete" in await kubectl(kc, "get", "jobs")
    out = await kubectl(kc, "wait", "--for=condition=failed", "job/broken", "--timeout=90s")
    assert "condition met" in out
    failed = await read(lambda **kw: lab.batch.read_namespaced_job("broken", "default", **kw))
    assert failed["status"]["failed"] == 2
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    assert condition(failed, "Failed")["message"] == "Job has reached the specified backoff limit"
    bad = {**job, "metadata": {"name": "bad"}}
    bad["spec"] = {**job["spec"], "template": {"spec": command_pod_spec("pass", "Always")}}
    out = await kubectl(kc, "apply", "-f", lab.manifest(bad), check=False)
    assert (
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
        in out
    )


async def test_a_cronjob_runs_a_job_at_its_schedule(lab: Lab) -> None:
    minute = (int(lab.clock() // 60) + 30) % 60  # half an hour away: never reached in real time
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "backup"},
        "spec": {
            "schedule": f"{minute} * * * *",
            "timeZone": "Europe/Berlin",
            "successfulJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"task": "backup"}},
                "spec": {"template": {"spec": command_pod_spec("print('backed up')")}},
            },
        },
    }
    await kubectl(lab.kubeconfig, "apply", "-f", lab.manifest(cronjob))
    await asyncio.sleep(1.5)
    jobs = await request(lab.batch.list_namespaced_job("default", _preload_content=False))
    assert jobs["items"] == []
    start = lab.clock()
    due = (int(start // 3600) * 3600) + minute * 60
    if due <= start:
        due += 3600
    lab.clock.advance(due - start + 5)

    async def job_named(name: str) -> dict[str, Any] | None:
        found = await request(lab.batch.list_namespaced_job("default", _preload_content=False))
        return next((j for j in found["items"] if j["metadata"]["name"] == name), None)

    first = await eventually(lambda: job_named(f"backup-{due // 60}"), what="the scheduled job")
    annotations = first["metadata"]["annotations"]
    assert annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == iso(due)
    assert first["metadata"]["labels"]["task"] == "backup"
    assert first["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    await kubectl(lab.kubeconfig, "wait", "--for=condition=complete", f"job/backup-{due // 60}")

    async def cron_status() -> dict[str, Any] | None:
        cj = await read(lambda **kw: lab.batch.read_namespaced_cron_job("backup", "default", **kw))
        status = cj.get("status") or {}
        return cj if status.get("lastSuccessfulTime") and not status.get("active") else None

    cj = await eventually(cron_status, what="the cronjob to see its job succeed")
    assert cj["status"]["lastScheduleTime"] == iso(due)
    lab.clock.advance(3600)
    await eventually(lambda: job_named(f"backup-{due // 60 + 60}"), what="the next run")
    await kubectl(
        lab.kubeconfig, "wait", "--for=condition=complete", f"job/backup-{due // 60 + 60}"
    )

    async def history_trimmed() -> bool:
        return await job_named(f"backup-{due // 60}") is None

    await eventually(history_trimmed, what="the older job to be removed (history limit 1)")
    table = await kubectl(lab.kubeconfig, "get", "cronjobs")
    assert f"{minute} * * * *" in table and "Europe/Berlin" in table


async def test_a_daemonset_runs_one_pod_on_each_matching_node(lab: Lab) -> None:
    kc = lab.kubeconfig
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "gpu-agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "gpu-agent"}},
            "template": {
                "metadata": {"labels": {"app": "gpu-agent"}},
                "spec": {
                    "nodeSelector": {"lab.example/role": "gpu"},
                    **command_pod_spec("import time; time.sleep(600)", "Always"),
                },
            },
        },
    }
    await kubectl(kc, "apply", "-f", lab.manifest(daemonset))
    out = await kubectl(kc, "rollout", "status", "daemonset/gpu-agent", "--timeout=90s")
    assert 'daemon set "gpu-agent" successfully rolled out' in out

    async def nodes_with_pods(expected: set[str]) -> set[str] | None:
        pods = await pods_of(lab, "app=gpu-agent")
        nodes = {
            p["spec"].get("nodeName") for p in pods if not p["metadata"].get("deletionTimestamp")
        }
        return nodes if nodes == expected and len(pods) == len(expected) else None

    await eventually(lambda: nodes_with_pods({"gpu-a", "gpu-b"}), what="pods on both GPU nodes")
    ds = await read(lambda **kw: lab.apps.read_namespaced_daemon_set("gpu-agent", "default", **kw))
    assert ds["status"]["desiredNumberScheduled"] == 2 and ds["status"]["numberReady"] == 2
    await kubectl(kc, "set", "env", "daemonset/gpu-agent", "LEVEL=debug")
    out = await kubectl(kc, "rollout", "status", "daemonset/gpu-agent", "--timeout=90s")
    assert 'daemon set "gpu-agent" successfully rolled out' in out
    for pod in await pods_of(lab, "app=gpu-agent"):
        if not pod["metadata"].get("deletionTimestamp"):
            assert {"name": "LEVEL", "value": "debug"} in pod["spec"]["containers"][0]["env"]
    await kubectl(kc, "label", "node", "cpu-c", "lab.example/role=gpu")
    await eventually(lambda: nodes_with_pods({"gpu-a", "gpu-b", "cpu-c"}), what="a third pod")
    await kubectl(kc, "label", "node", "gpu-b", "lab.example/role-")
    await eventually(lambda: nodes_with_pods({"gpu-a", "cpu-c"}), what="gpu-b's pod to go")
    assert "gpu-agent" in await kubectl(kc, "get", "ds")


async def test_a_disruption_budget_blocks_an_eviction(lab: Lab) -> None:
    kc = lab.kubeconfig
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
    }
    await kubectl(kc, "apply", "-f", lab.manifest(web_deployment("web", "v1"), budget))
    await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    policy = PolicyV1Api(lab.client)

    async def settled() -> dict[str, Any] | None:
        pdb = await read(
            lambda **kw: policy.read_namespaced_pod_disruption_budget("web", "default", **kw)
        )
        return pdb if (pdb.get("status") or {}).get("currentHealthy") == 2 else None

    pdb = await eventually(settled, what="the budget's status")
    assert pdb["status"]["disruptionsAllowed"] == 0 and pdb["status"]["desiredHealthy"] == 2
    victim = (await pods_of(lab, "app=web"))[0]["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}}
    with pytest.raises(ApiException) as refused:
        await lab.core.create_namespaced_pod_eviction(victim, "default", eviction)
    assert refused.value.status == 429
    body = json.loads(refused.value.body)
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [
        {
            "reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
        }
    ]
    await kubectl(kc, "patch", "pdb", "web", "--type=merge", "-p", '{"spec": {"minAvailable": 1}}')
    await lab.core.create_namespaced_pod_eviction(victim, "default", eviction)

    async def replaced() -> bool:
        pods = await pods_of(lab, "app=web")
        names = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
        return victim not in names and len(names) == 2

    await eventually(replaced, what="the evicted pod to be replaced")


async def test_a_statefulset_starts_its_pods_in_order_with_their_own_claims(lab: Lab) -> None:
    kc = lab.kubeconfig
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": command_pod_spec("import time; time.sleep(600)", "Always"),
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    await kubectl(kc, "apply", "-f", lab.manifest(statefulset))
    out = await kubectl(kc, "rollout", "status", "statefulset/db", "--timeout=90s")
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    pods = sorted(await pods_of(lab, "app=db"), key=lambda p: p["metadata"]["creationTimestamp"])
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1", "db-2"]
    assert pods[0]["spec"]["hostname"] == "db-0" and pods[0]["spec"]["subdomain"] == "db"
    claims = await request(
        lab.core.list_namespaced_persistent_volume_claim("default", _preload_content=False)
    )
    assert sorted(c["metadata"]["name"] for c in claims["items"]) == [
        "data-db-0",
        "data-db-1",
        "data-db-2",
    ]
    await kubectl(kc, "set", "env", "statefulset/db", "MODE=replica")
    out = await kubectl(kc, "rollout", "status", "statefulset/db", "--timeout=90s")
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    for pod in await pods_of(lab, "app=db"):
        assert {"name": "MODE", "value": "replica"} in pod["spec"]["containers"][0]["env"]
    await kubectl(kc, "scale", "statefulset/db", "--replicas=1")

    async def one_left() -> bool:
        names = [p["metadata"]["name"] for p in await pods_of(lab, "app=db")]
        return names == ["db-0"]

    await eventually(one_left, what="db-2 and db-1 to go")
    claims = await request(
        lab.core.list_namespaced_persistent_volume_claim("default", _preload_content=False)
    )
    assert len(claims["items"]) == 3  # claims outlive their pods


async def test_a_deployment_that_cannot_progress_passes_its_deadline(lab: Lab) -> None:
    kc = lab.kubeconfig
    stuck = web_deployment("stuck", "v1", 1)
    stuck["spec"]["progressDeadlineSeconds"] = 60
    container = stuck["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "64"}}  # fits no node: stays Pending
    await kubectl(kc, "apply", "-f", lab.manifest(stuck))

    async def progressing(reason: str) -> dict[str, Any] | None:
        d = await read(lambda **kw: lab.apps.read_namespaced_deployment("stuck", "default", **kw))
        conds = d.get("status", {}).get("conditions") or []
        return d if any(c["reason"] == reason for c in conds) else None

    await eventually(lambda: progressing("ReplicaSetUpdated"), what="the rollout to start")
    lab.clock.advance(120)
    dep = await eventually(lambda: progressing("ProgressDeadlineExceeded"), what="the deadline")
    cond = condition(dep, "Progressing")
    assert cond["status"] == "False"
    assert cond["message"].endswith("has timed out progressing.")
    out = await kubectl(kc, "rollout", "status", "deployment/stuck", "--timeout=10s", check=False)
    assert 'error: deployment "stuck" exceeded its progress deadline' in out
