"""Every rendered manifest validates against the Kubernetes 1.31-1.35 schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chart_render import CI_VALUES, PREVIOUS_DIR, PREVIOUS_VALUES, render
from k8s_schemas import CRD_SCHEMAS, KUBERNETES_VERSIONS, errors, shipped_versions


def _unique_manifests() -> dict[str, dict[str, Any]]:
    """Each distinct manifest of all values files once (many are identical across files)."""
    unique: dict[str, dict[str, Any]] = {}
    sources = [render(v) for v in CI_VALUES]
    sources += [render(PREVIOUS_DIR / v) for v in PREVIOUS_VALUES]
    for docs in sources:
        for doc in docs:
            unique.setdefault(json.dumps(doc, sort_keys=True), doc)
    return unique


def test_kubernetes_validate_ships_every_tested_version() -> None:
    assert set(KUBERNETES_VERSIONS) <= set(shipped_versions())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_validate(version: str) -> None:
    manifests = _unique_manifests()
    assert len(manifests) > 50
    problems = []
    for doc in manifests.values():
        for message in errors(doc, version):
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {message}")
    assert not problems, "\n".join(problems[:30])


def test_custom_resources_are_checked_by_their_own_schemas() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in _unique_manifests().values()}
    assert kinds & set(CRD_SCHEMAS) == {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    }


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["spec"].__setitem__("replicas", "one"), "replicas"),
        (lambda d: d["spec"]["template"]["spec"].__setitem__("hostNetwrk", True), "hostNetwrk"),
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),
    ],
)
def test_validator_rejects_broken_manifests(mutate: Any, expected: str) -> None:
    docs = render("defaults-values.yaml")
    hub = json.loads(json.dumps(next(d for d in docs if d["kind"] == "Deployment")))
    mutate(hub)
    assert any(expected in e for e in errors(hub, "1.35"))


def test_crd_subset_rejects_unknown_fields() -> None:
    docs = render("all-options-values.yaml")
    monitor = json.loads(json.dumps(next(d for d in docs if d["kind"] == "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert errors(monitor, "1.35")
