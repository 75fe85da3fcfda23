"""A course profile's kubespawner_override: names checked against KubeSpawner's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubespawner import KubeSpawner

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.core.profiles.build import parse_profile
from hub_ext.core.profiles.model import parse_policy
from hub_ext.core.profiles.overrides import HUB_OWNED, KUBESPAWNER_TRAITS

ROOT = Path(__file__).resolve().parents[2]
POLICY = parse_policy((ROOT / "profiles/policy.yaml").read_text())
BASE = (ROOT / "profiles/intro-python/profile.yaml").read_text()


def _parse(override: str) -> tuple[object, list[str]]:
    profile, errors = parse_profile(
        BASE + "kubespawner_override:\n" + override, "intro-python/profile.yaml", POLICY
    )
    return profile, [str(e) for e in errors]


def test_the_list_is_kubespawners_configurable_traits() -> None:
    assert set(KubeSpawner.class_traits(config=True)) == KUBESPAWNER_TRAITS
    assert set(HUB_OWNED) <= KUBESPAWNER_TRAITS


def test_valid_overrides_are_kept_as_data() -> None:
    profile, errors = _parse(
        "  tolerations: [{key: lab.example/dedicated, operator: Exists}]\n"
        "  extra_labels: {lab.example/cohort: '2026'}\n"
        "  priority_class_name: course-high\n"
    )
    assert errors == []
    assert prof.kubespawner_override(profile) == {
        "extra_labels": {"lab.example/cohort": "2026"},
        "priority_class_name": "course-high",
        "tolerations": [{"key": "lab.example/dedicated", "operator": "Exists"}],
    }
    assert all(json.loads(v) is not None for _, v in profile.kubespawner_override)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "  tolerationz: []\n",
            "kubespawner_override.tolerationz: is not a KubeSpawner setting "
            "(allowed: did you mean tolerations?)",
        ),
        ("  frobnicate: 1\n", "frobnicate: is not a KubeSpawner setting"),
        ("  image: other:1\n", "image: may not be set by a course profile (allowed: use the"),
        ("  cpu_limit: 64\n", "use resources.cpu_limit"),
        ("  namespace: elsewhere\n", "namespace: may not be set by a course profile"),
        ("  uid: 0\n", "uid: = 0 would run the server as root"),
        (
            "  extra_pod_config: {hostNetwork: true}\n",
            "extra_pod_config.hostNetwork: security: privileged or host access",
        ),
    ],
)
def test_a_bad_override_is_an_error_naming_it(override: str, expected: str) -> None:
    profile, errors = _parse(override)
    assert profile is None
    assert any(expected in e for e in errors), errors
    assert all("intro-python/profile.yaml:" in e for e in errors)
