"""The chart's singleuser values reach the pod LabHub creates (through labhub_chart.py, the hub
config and LabKubeSpawner, spawning on the development cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import render
from chart_spawn import created_user_pod
from direct_spawn import TAINT

FULL = "gpulab-labhub"
VALUES = {
    "imagePullSecrets": ["course-registry"],
    "singleuser": {
        "uid": 1234,
        "fsGid": 4321,
        "nodeSelector": {"labhub.io/role": "gpu"},
        "extraTolerations": [{**TAINT, "operator": "Equal"}],
        "extraEnv": {"LAB_SITE": "campus-north"},
        "extraVolumes": [{"name": "course-notes", "configMap": {"name": "course-notes"}}],
        "extraVolumeMounts": [{"name": "course-notes", "mountPath": "/srv/notes"}],
    },
}


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("chart-pod")
    values = root / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    # the node is tainted: the pod only runs if the chart's tolerations reached it
    return created_user_pod(render("defaults-values.yaml", values), FULL, root, taint=True)


def _notebook(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


ROWS: list[tuple[str, Any, Any]] = [
    (
        "singleuser.extraTolerations",
        lambda p: TAINT["key"] in {t["key"] for t in p["spec"]["tolerations"]},
        True,
    ),
    ("singleuser.nodeSelector", lambda p: p["spec"]["nodeSelector"], {"labhub.io/role": "gpu"}),
    ("imagePullSecrets", lambda p: p["spec"]["imagePullSecrets"], [{"name": "course-registry"}]),
    ("singleuser.uid", lambda p: _notebook(p)["securityContext"]["runAsUser"], 1234),
    ("singleuser.uid (pod)", lambda p: p["spec"]["securityContext"]["runAsUser"], 1234),
    ("singleuser.fsGid", lambda p: p["spec"]["securityContext"]["fsGroup"], 4321),
    (
        "singleuser.extraEnv",
        lambda p: {e["name"]: e.get("value") for e in _notebook(p)["env"]}["LAB_SITE"],
        "campus-north",
    ),
    (
        "singleuser.extraVolumes",
        lambda p: (
            {"name": "course-notes", "configMap": {"name": "course-notes"}} in p["spec"]["volumes"]
        ),
        True,
    ),
    (
        "singleuser.extraVolumeMounts",
        lambda p: (
            {"name": "course-notes", "mountPath": "/srv/notes"} in _notebook(p)["volumeMounts"]
        ),
        True,
    ),
    ("scheduling.userScheduler", lambda p: p["spec"]["schedulerName"], f"{FULL}-user-scheduler"),
    ("scheduling.podPriority", lambda p: p["spec"]["priorityClassName"], f"{FULL}-user"),
    (
        "singleuser.storage.homeMountPath",
        lambda p: {"name": "home", "mountPath": "/home/jovyan"} in _notebook(p)["volumeMounts"],
        True,
    ),
]


@pytest.mark.parametrize(("value", "read", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_the_chart_value_reaches_the_created_pod(
    pod: dict[str, Any], value: str, read: Any, expected: Any
) -> None:
    assert read(pod) == expected


def test_the_pod_ran_on_the_tainted_node_through_the_user_scheduler(pod: dict[str, Any]) -> None:
    assert pod["spec"]["nodeName"] == "gpu-a"
    assert pod["status"]["phase"] == "Running"


def test_the_home_volume_is_labhubs_only(pod: dict[str, Any]) -> None:
    homes = [v for v in pod["spec"]["volumes"] if v["name"] == "home"]
    assert homes == [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-anna"}}]


def test_a_loosening_hub_config_is_refused_at_start(tmp_path: Path) -> None:
    from hub_config import load_hub_config

    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {"hub": {"config": {"LabKubeSpawner": {"extra_pod_config": {"hostNetwork": True}}}}}
        )
    )
    with pytest.raises(ValueError, match="c.LabKubeSpawner.extra_pod_config sets hostNetwork"):
        load_hub_config(render("defaults-values.yaml", values), FULL, tmp_path)
