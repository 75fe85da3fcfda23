"""The course-image pre-puller as rendered: a pre-upgrade hook and a continuous DaemonSet that
pull every pinned course image on the GPU nodes only."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import find, one, render, render_error

from hub_ext.services.image_awaiter import progress

VALUES = "prepuller-values.yaml"
DIGEST = "@sha256:" + "a" * 64
HOOK = "gpulab-labhub-hook-image-puller"
CONTINUOUS = "gpulab-labhub-continuous-image-puller"
AWAITER = "gpulab-labhub-hook-image-awaiter"


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", [HOOK, CONTINUOUS])
def test_every_pinned_course_image_is_pulled_on_gpu_nodes_only(name: str) -> None:
    spec = _pod(one(render(VALUES), "DaemonSet", name))
    images = [c["image"] for c in spec["initContainers"]]
    assert images == [
        "registry.lab.example.edu/courses/cv-201:2026.11@sha256:" + "b" * 64,
        "registry.lab.example.edu/courses/lecturer-sandbox:2026.11@sha256:" + "c" * 64,
        "registry.lab.example.edu/courses/ml-101:2026.11" + DIGEST,
    ]
    assert all("@sha256:" in image for image in images)
    assert spec["nodeSelector"] == {"labhub.io/role": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert [c["image"] for c in spec["containers"]] == ["registry.k8s.io/pause:3.10"]
    assert spec["automountServiceAccountToken"] is False
    assert "priorityClassName" not in spec  # never preempts a student's server


def test_the_hook_pulls_before_upgrades_and_the_awaiter_waits_for_it() -> None:
    docs = render(VALUES)
    hook = one(docs, "DaemonSet", HOOK)["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    job = one(docs, "Job", AWAITER)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) > int(hook["helm.sh/hook-weight"])
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    container = _pod(job)["containers"][0]
    assert container["command"] == ["python3", "-m", "hub_ext.services.image_awaiter"]
    assert f"--daemonset={HOOK}" in container["args"] and "--timeout=600" in container["args"]
    assert job["spec"]["activeDeadlineSeconds"] > 600
    rules = one(docs, "Role", AWAITER)["rules"]
    assert rules == [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets"],
            "resourceNames": [HOOK],
            "verbs": ["get"],
        }
    ]
    # the continuous puller is an ordinary release object, not a hook
    assert "annotations" not in one(docs, "DaemonSet", CONTINUOUS)["metadata"]


def test_without_pinned_images_nothing_is_pulled() -> None:
    docs = render("defaults-values.yaml")
    assert find(docs, "DaemonSet") == []
    assert find(docs, "Job", AWAITER) == []


def test_hook_and_continuous_can_be_turned_off() -> None:
    docs = render(VALUES, sets=("prePuller.hook.enabled=false",))
    assert find(docs, "DaemonSet", HOOK) == [] and find(docs, "Job", AWAITER) == []
    assert find(docs, "DaemonSet", CONTINUOUS) != []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("prePuller.extraImages.tools=quay.io/jupyter/base-notebook:2025-03-17",),
            "image tools (quay.io/jupyter/base-notebook:2025-03-17) is not pinned by digest",
        ),
        (("prePuller.imagesLock=ml-101: [oops",), "prePuller.imagesLock is not YAML"),
        (
            (
                "labhub.profiles.inline.nlp.image=quay.io/jupyter/base-notebook:2025-03-17",
                "labhub.profiles.inline.nlp.display_name=NLP",
            ),
            "the course profile nlp has no pinned image",
        ),
    ],
)
def test_unpinned_or_missing_images_are_refused_clearly(
    sets: tuple[str, ...], message: str
) -> None:
    assert message in render_error(VALUES, sets=sets)


@pytest.mark.parametrize(
    ("status", "generation", "done", "text"),
    [
        (
            {
                "desiredNumberScheduled": 4,
                "numberReady": 4,
                "updatedNumberScheduled": 4,
                "observedGeneration": 2,
            },
            2,
            True,
            "4 of 4",
        ),
        (
            {
                "desiredNumberScheduled": 4,
                "numberReady": 4,
                "updatedNumberScheduled": 1,
                "observedGeneration": 2,
            },
            2,
            False,
            "1 of 4",
        ),
        (
            {
                "desiredNumberScheduled": 4,
                "numberReady": 4,
                "updatedNumberScheduled": 4,
                "observedGeneration": 1,
            },
            2,
            False,
            "4 of 4",
        ),  # the new spec is not seen yet
        ({}, 1, False, "0 of 0"),
    ],
)
def test_awaiter_progress(status: dict[str, int], generation: int, done: bool, text: str) -> None:
    state = progress({"metadata": {"generation": generation}, "status": status})
    assert state.done is done
    assert state.describe().startswith(text)
