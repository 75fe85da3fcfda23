"""Every KubeSpawner pod setting reaches the pod LabKubeSpawner creates on the cluster.

One spawner is configured with all the settings of the table below, started against the
development cluster, and the pod it created is read back from the API server; each row then
checks one field of that pod. LabHub's own parts (profile resources, home volume, labels, the
security floor) are checked on the same pod.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from direct_spawn import LIGHT, TAINT, USER_SCHEDULER, lab

HOOKED: list[dict[str, Any]] = []
AFFINITY_TERM = {
    "labelSelector": {"matchLabels": {"lab.example/cohort": "2026"}},
    "topologyKey": "kubernetes.io/hostname",
}
ROLE = {"matchExpressions": [{"key": "lab.example/role", "operator": "In", "values": ["gpu"]}]}
SIDECAR = [sys.executable, "-c", "import time; time.sleep(600)"]


def mark_pod(spawner: Any, pod: Any) -> Any:
    pod.metadata.annotations["lab.example/modified-by-hook"] = spawner.user.name
    return pod


async def after_created(spawner: Any, pod: dict[str, Any]) -> None:
    HOOKED.append(pod)


SETTINGS: dict[str, Any] = {
    "tolerations": [{**TAINT, "operator": "Equal"}],
    "node_selector": {"lab.example/role": "gpu"},
    "node_affinity_required": [ROLE],
    "node_affinity_preferred": [{"weight": 10, "preference": ROLE}],
    "pod_affinity_preferred": [{"weight": 5, "podAffinityTerm": AFFINITY_TERM}],
    "pod_affinity_required": [AFFINITY_TERM],
    "pod_anti_affinity_preferred": [{"weight": 7, "podAffinityTerm": AFFINITY_TERM}],
    "pod_anti_affinity_required": [
        {**AFFINITY_TERM, "labelSelector": {"matchLabels": {"lab.example/x": "y"}}}
    ],
    "image_pull_secrets": ["registry-credentials"],
    "image_pull_policy": "Always",
    "scheduler_name": USER_SCHEDULER,
    "priority_class_name": "lab-user",
    "uid": 1500,
    "gid": 1600,
    "fs_gid": 1700,
    "supplemental_gids": [2000, 2001],
    "container_security_context": {"readOnlyRootFilesystem": True},
    "pod_security_context": {"fsGroupChangePolicy": "OnRootMismatch"},
    "extra_labels": {"lab.example/cohort": "2026"},
    "extra_annotations": {"lab.example/owner": "owner-{username}"},
    "init_containers": [{"name": "prepare", "image": "busybox:1.36", "command": ["true"]}],
    "extra_containers": [{"name": "sidecar", "image": "busybox:1.36", "command": SIDECAR}],
    "lifecycle_hooks": {"postStart": {"exec": {"command": ["true"]}}},
    "extra_pod_config": {"terminationGracePeriodSeconds": 7},
    "extra_container_config": {"terminationMessagePolicy": "FallbackToLogsOnError"},
    "volumes": [{"name": "scratch", "emptyDir": {}}],
    "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}],
    "service_account": "lab-student",
    "automount_service_account_token": False,
    "working_dir": "/home/jovyan/work",
    "cmd": LIGHT,
    "args": ["--lab-test"],
    "extra_resource_guarantees": {"ephemeral-storage": "1Gi"},
    "extra_resource_limits": {"ephemeral-storage": "2Gi"},
    "environment": {"LAB_GREETING": "hello {username}"},
    "dns_name_template": "{name}.{namespace}.svc.lab.example",
    "modify_pod_hook": mark_pod,
    "after_pod_created_hook": after_created,
}


def _container(pod: dict[str, Any], name: str = "notebook") -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in _container(pod).get("env") or []}


def _affinity(pod: dict[str, Any], kind: str, when: str) -> Any:
    return pod["spec"]["affinity"][kind][f"{when}DuringSchedulingIgnoredDuringExecution"]


# (setting, what the created pod shows for it, expected)
ROWS: list[tuple[str, Any, Any]] = [
    ("tolerations", lambda p: TAINT["key"] in {t["key"] for t in p["spec"]["tolerations"]}, True),
    ("node_selector", lambda p: p["spec"]["nodeSelector"], {"lab.example/role": "gpu"}),
    (
        "node_affinity_required",
        lambda p: _affinity(p, "nodeAffinity", "required")["nodeSelectorTerms"],
        [ROLE],
    ),
    (
        "node_affinity_preferred",
        lambda p: _affinity(p, "nodeAffinity", "preferred")[0]["weight"],
        10,
    ),
    ("pod_affinity_preferred", lambda p: _affinity(p, "podAffinity", "preferred")[0]["weight"], 5),
    ("pod_affinity_required", lambda p: _affinity(p, "podAffinity", "required"), [AFFINITY_TERM]),
    (
        "pod_anti_affinity_preferred",
        lambda p: _affinity(p, "podAntiAffinity", "preferred")[0]["weight"],
        7,
    ),
    (
        "pod_anti_affinity_required",
        lambda p: _affinity(p, "podAntiAffinity", "required")[0]["labelSelector"],
        {"matchLabels": {"lab.example/x": "y"}},
    ),
    (
        "image_pull_secrets",
        lambda p: p["spec"]["imagePullSecrets"],
        [{"name": "registry-credentials"}],
    ),
    ("image_pull_policy", lambda p: _container(p)["imagePullPolicy"], "Always"),
    ("scheduler_name", lambda p: p["spec"]["schedulerName"], USER_SCHEDULER),
    ("priority_class_name", lambda p: p["spec"]["priorityClassName"], "lab-user"),
    ("uid", lambda p: _container(p)["securityContext"]["runAsUser"], 1500),
    ("gid", lambda p: _container(p)["securityContext"]["runAsGroup"], 1600),
    ("fs_gid", lambda p: p["spec"]["securityContext"]["fsGroup"], 1700),
    (
        "supplemental_gids",
        lambda p: p["spec"]["securityContext"]["supplementalGroups"],
        [2000, 2001],
    ),
    (
        "container_security_context",
        lambda p: _container(p)["securityContext"]["readOnlyRootFilesystem"],
        True,
    ),
    (
        "pod_security_context",
        lambda p: p["spec"]["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch",
    ),
    ("extra_labels", lambda p: p["metadata"]["labels"]["lab.example/cohort"], "2026"),
    (
        "extra_annotations",
        lambda p: p["metadata"]["annotations"]["lab.example/owner"],
        "owner-anna",
    ),
    ("init_containers", lambda p: [c["name"] for c in p["spec"]["initContainers"]], ["prepare"]),
    (
        "extra_containers",
        lambda p: [c["name"] for c in p["spec"]["containers"]],
        ["notebook", "sidecar"],
    ),
    (
        "lifecycle_hooks",
        lambda p: _container(p)["lifecycle"]["postStart"]["exec"]["command"],
        ["true"],
    ),
    ("extra_pod_config", lambda p: p["spec"]["terminationGracePeriodSeconds"], 7),
    (
        "extra_container_config",
        lambda p: _container(p)["terminationMessagePolicy"],
        "FallbackToLogsOnError",
    ),
    ("volumes", lambda p: {"name": "scratch", "emptyDir": {}} in p["spec"]["volumes"], True),
    (
        "volume_mounts",
        lambda p: {"name": "scratch", "mountPath": "/scratch"} in _container(p)["volumeMounts"],
        True,
    ),
    ("service_account", lambda p: p["spec"]["serviceAccountName"], "lab-student"),
    ("automount_service_account_token", lambda p: p["spec"]["automountServiceAccountToken"], False),
    ("working_dir", lambda p: _container(p)["workingDir"], "/home/jovyan/work"),
    ("cmd", lambda p: _container(p)["args"][: len(LIGHT)], LIGHT),
    ("args", lambda p: _container(p)["args"][len(LIGHT) :], ["--lab-test"]),
    (
        "extra_resource_guarantees",
        lambda p: _container(p)["resources"]["requests"]["ephemeral-storage"],
        "1Gi",
    ),
    (
        "extra_resource_limits",
        lambda p: _container(p)["resources"]["limits"]["ephemeral-storage"],
        "2Gi",
    ),
    ("environment", lambda p: _env(p)["LAB_GREETING"], "hello anna"),
    (
        "modify_pod_hook",
        lambda p: p["metadata"]["annotations"]["lab.example/modified-by-hook"],
        "anna",
    ),
]


@pytest.fixture(scope="module")
def spawned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start one server with every setting; the created pod, the URL and what the hooks saw."""

    async def scenario(tmp: Path) -> dict[str, Any]:
        async with lab(tmp) as cluster:
            spawner = cluster.spawner(cluster.config(**SETTINGS))
            spawner.user_options = {"profile": "intro-python"}
            url = await asyncio.wait_for(spawner.start(), 90)
            pod = await cluster.pod("jupyter-anna")
            result = {"pod": pod, "url": url, "dns_name": spawner.dns_name}
            await spawner.stop(now=True)
            return result

    return asyncio.run(scenario(tmp_path_factory.mktemp("settings")))


@pytest.mark.parametrize(("setting", "read", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_the_setting_reaches_the_created_pod(
    spawned: dict[str, Any], setting: str, read: Any, expected: Any
) -> None:
    assert setting in SETTINGS
    assert read(spawned["pod"]) == expected


def test_the_table_covers_every_configured_setting() -> None:
    checked = {r[0] for r in ROWS} | {"after_pod_created_hook", "dns_name_template"}
    assert checked == set(SETTINGS)


def test_the_pod_was_scheduled_by_the_named_scheduler_onto_the_tainted_node(
    spawned: dict[str, Any],
) -> None:
    pod = spawned["pod"]
    assert pod["spec"]["nodeName"] == "gpu-a"
    assert pod["status"]["phase"] == "Running"


def test_after_pod_created_hook_sees_the_created_pod(spawned: dict[str, Any]) -> None:
    assert [p["metadata"]["uid"] for p in HOOKED] == [spawned["pod"]["metadata"]["uid"]]


def test_dns_name_template_names_the_server(spawned: dict[str, Any]) -> None:
    # without services_enabled, KubeSpawner (and LabHub) reach the server on its pod IP
    assert spawned["dns_name"] == "jupyter-anna.default.svc.lab.example"
    assert spawned["url"].startswith(f"http://{spawned['pod']['status']['podIP']}:")


def test_labhub_parts_and_the_security_floor_are_on_the_same_pod(spawned: dict[str, Any]) -> None:
    pod = spawned["pod"]
    notebook = _container(pod)
    assert pod["metadata"]["labels"]["labhub.io/course"] == "intro-python"
    assert _env(pod)["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert notebook["resources"]["limits"]["cpu"] == "1"
    assert notebook["resources"]["limits"]["memory"] == "1Gi"
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "claim-anna"}} in pod["spec"][
        "volumes"
    ]
    assert not pod["spec"].get("schedulingGates")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*pod["spec"]["containers"], *pod["spec"]["initContainers"]]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], container["name"]
        assert sc["runAsNonRoot"] is True, container["name"]


def test_a_profiles_kubespawner_override_reaches_the_pod_and_is_undone_after(
    tmp_path: Path,
) -> None:
    import dataclasses

    import e2e_profiles

    @dataclasses.dataclass(frozen=True)
    class OverridingProfile(e2e_profiles.Profile):
        kubespawner_override: tuple[tuple[str, str], ...] = ()

    base = next(p for p in e2e_profiles.PROFILES if p.slug == "intro-python")
    override = (
        ("extra_labels", '{"lab.example/course-tier": "gold"}'),
        ("priority_class_name", '"course-high"'),
    )
    profiles = (
        OverridingProfile(**{**vars(base), "slug": "intro-gold"}, kubespawner_override=override),
        base,
    )

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        async with lab(tmp_path) as cluster:
            config = cluster.config(priority_class_name="lab-user")
            config.LabKubeSpawner.profile_provider = lambda: profiles
            spawner = cluster.spawner(config)
            spawner.user_options = {"profile": "intro-gold"}
            await asyncio.wait_for(spawner.start(), 90)
            gold = await cluster.pod("jupyter-anna")
            await spawner.stop(now=True)
            spawner.clear_state()
            spawner.user_options = {"profile": "intro-python"}
            await asyncio.wait_for(spawner.start(), 90)
            plain = await cluster.pod("jupyter-anna")
            await spawner.stop(now=True)
            return gold, plain

    gold, plain = asyncio.run(scenario())
    assert gold is not None and plain is not None
    assert gold["metadata"]["labels"]["lab.example/course-tier"] == "gold"
    assert gold["spec"]["priorityClassName"] == "course-high"
    assert "lab.example/course-tier" not in plain["metadata"]["labels"]
    assert plain["spec"]["priorityClassName"] == "lab-user"
