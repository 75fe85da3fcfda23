"""Security of every pod the chart renders and of the user pods LabKubeSpawner creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_render import CI_VALUES, PREVIOUS_DIR, PREVIOUS_VALUES, pod_specs, render
from chart_spawn import created_user_pod
from pss import all_containers, restricted_violations

ALL_SOURCES = [*CI_VALUES, *(str(PREVIOUS_DIR / v) for v in PREVIOUS_VALUES)]


def _pods() -> list[tuple[str, str, dict[str, Any]]]:
    return [(src, owner, spec) for src in ALL_SOURCES for owner, spec in pod_specs(render(src))]


def test_every_component_has_pods() -> None:
    owners = {owner.split("-", 2)[-1] for _, owner, _ in _pods()}
    assert {"hub", "proxy", "user-scheduler", "backup", "traefik", "proxy-store"} <= owners


@pytest.mark.parametrize("values", ALL_SOURCES)
def test_containers_follow_the_security_list(values: str) -> None:
    problems = []
    for owner, spec in pod_specs(render(values)):
        pod_sc = spec.get("securityContext") or {}
        if pod_sc.get("runAsNonRoot") is not True:
            problems.append(f"{owner}: pod runAsNonRoot is not true")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{owner}: pod seccompProfile is not RuntimeDefault")
        for c in all_containers(spec):
            where = f"{owner}/{c['name']}"
            sc = c.get("securityContext") or {}
            if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
                problems.append(f"{where}: not non-root with a numeric user")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc["capabilities"].get("add"):
                problems.append(f"{where}: capabilities not exactly drop ALL")
            if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccomp not RuntimeDefault")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem writable")
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                if set(resources.get(part) or {}) < {"cpu", "memory"}:
                    problems.append(f"{where}: resources.{part} lacks cpu or memory")
            image = c["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
            if tag in {"", "latest"}:
                problems.append(f"{where}: image {image} has no fixed tag")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("values", ALL_SOURCES)
def test_pod_security_standard_restricted(values: str) -> None:
    problems = [
        f"{owner}: {v}"
        for owner, spec in pod_specs(render(values))
        for v in restricted_violations(spec)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("values", ALL_SOURCES)
def test_only_pods_that_talk_to_the_api_get_a_token(values: str) -> None:
    for owner, spec in pod_specs(render(values)):
        needs_api = any(
            part in owner for part in ("-hub", "user-scheduler", "-backup", "-image-awaiter")
        )
        assert spec.get("automountServiceAccountToken") is needs_api, owner


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.__setitem__("hostNetwork", True), "hostNetwork"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (
            lambda s: s["containers"][0]["securityContext"].__setitem__("privileged", True),
            "privileged",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
            "allowPrivilegeEscalation",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].__setitem__(
                "add", ["SYS_ADMIN"]
            ),
            "adds capabilities",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].__setitem__("runAsNonRoot", False),
            "runAsNonRoot",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].__setitem__(
                "seccompProfile", {"type": "Unconfined"}
            ),
            "seccomp",
        ),
        (lambda s: s["containers"][0]["ports"][0].__setitem__("hostPort", 80), "hostPort"),
    ],
)
def test_restricted_checker_catches_violations(mutate: Any, expected: str) -> None:
    import copy

    docs = render("defaults-values.yaml")
    spec = copy.deepcopy(dict(pod_specs(docs))["Deployment/gpulab-labhub-hub"])
    assert restricted_violations(spec) == []
    mutate(spec)
    assert any(expected in v for v in restricted_violations(spec))


def _user_pod(tmp_path: Path, values: str, sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pod LabKubeSpawner creates, configured by the chart's hub config, on the cluster."""
    fullname = "lab" if "all-options" in values else "gpulab-labhub"
    return created_user_pod(render(values, sets=sets), fullname, tmp_path)


@pytest.mark.parametrize(
    "values", ["defaults-values.yaml", "all-options-values.yaml", "oidc-values.yaml"]
)
def test_user_pods_meet_restricted(tmp_path: Path, values: str) -> None:
    pod = _user_pod(tmp_path, values)
    assert restricted_violations(pod["spec"]) == []
    for container in all_containers(pod["spec"]):
        resources = container.get("resources") or {}
        assert {"cpu", "memory"} <= set(resources.get("limits") or {}), container["name"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "singleuser-server"
    assert pod["status"]["phase"] == "Running"


def test_user_pod_security_follows_the_uid_value(tmp_path: Path) -> None:
    pod = _user_pod(tmp_path, "defaults-values.yaml", sets=("singleuser.uid=1500",))
    assert pod["spec"]["securityContext"]["runAsUser"] == 1500
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1500
    assert restricted_violations(pod["spec"]) == []
