from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.profiles import parse_policy, parse_profile, to_spawn_plan

ROOT = Path(__file__).resolve().parents[2]
ML = (ROOT / "profiles/ml-101/profile.yaml").read_text()


def test_example_validates_and_plans() -> None:
    profile, errors = parse_profile(ML, "ml-101/profile.yaml")
    assert errors == [] and profile is not None
    plan = to_spawn_plan(profile)
    assert plan.gpu is not None and plan.gpu.slice_types == ("1g.10gb",)
    assert plan.labels == (("labhub.io/course", "ml-101"),)


def test_occurrences_dst_correct() -> None:
    profile, _ = parse_profile(ML, "p")
    assert profile is not None
    tue = profile.sessions[0]
    summer = tue.occurrences_between(
        datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 10, 21, tzinfo=UTC)
    )
    winter = tue.occurrences_between(
        datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    )
    assert summer[0][0] == datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
    assert winter[0][0] == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


BAD = {
    "privileged": ("privileged: true\n", "privileged", "security"),
    "hostpath": ("hostPath: /\n", "hostPath", "security"),
    "misspelt": ("dispaly_name: x\n", "dispaly_name", "unknown field"),
    "latest": (None, "image", "latest"),
    "secret_env": ("env: {DB_PASSWORD: x}\n", "env.DB_PASSWORD", "secret"),
    "bad_tz": (None, "sessions[0]", "invalid session"),
    "alias": ("a: &x [1]\nb: *x\n", "", "aliases"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_profiles_refused(name: str) -> None:
    extra, path, msg = BAD[name]
    text = ML + (extra or "")
    if name == "latest":
        text = ML.replace(":2026.11", ":latest")
    if name == "bad_tz":
        text = ML.replace("Europe/Berlin", "Mars/Olympus", 1)
    if name == "alias":
        text = extra or ""
    profile, errors = parse_profile(text, "p.yaml")
    assert profile is None
    assert any(e.path == path and msg in e.message for e in errors), errors


def test_oversized_refused() -> None:
    _, errors = parse_profile("a: " + "x" * 300_000, "p")
    assert "too large" in errors[0].message


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises(text: str) -> None:
    profile, errors = parse_profile(text, "p")
    assert profile is None or errors == []


def test_unknown_slice_type() -> None:
    _, errors = parse_profile(ML.replace("[1g.10gb]", "[9g.99gb]"), "p")
    assert errors[0].path == "gpu.slice_types[0]" and "unknown slice type" in errors[0].message
    assert "1g.10gb" in errors[0].allowed


def test_overlapping_sessions() -> None:
    _, errors = parse_profile(ML.replace("weekday: thu", "weekday: tue"), "p")
    assert any(e.path == "sessions[1]" and "overlaps" in e.message for e in errors)


POLICY = parse_policy((ROOT / "profiles/policy.yaml").read_text())


@pytest.mark.parametrize(
    ("old", "new", "path", "msg"),
    [
        ("registry.lab.example.edu", "docker.io", "image", "not allowed"),
        ("cpu_limit: 4", "cpu_limit: 64", "resources.cpu_limit", "above the policy maximum"),
        ("cpu_limit: 4", "cpu_limit: four", "resources.cpu_limit", "positive number"),
        ("[1g.10gb]", "[7g.40gb]", "gpu.slice_types[0]", "not allowed by policy"),
    ],
    ids=["registry", "cpu-above-policy", "cpu-wrong-type", "slice-not-allowed"],
)
def test_policy_refusals(old: str, new: str, path: str, msg: str) -> None:
    _, errors = parse_profile(ML.replace(old, new), "p", POLICY)
    assert any(e.path == path and msg in e.message for e in errors), errors


def test_examples_pass_policy() -> None:
    for p in sorted((ROOT / "profiles").glob("*/profile.yaml")):
        assert parse_profile(p.read_text(), str(p), POLICY)[1] == []
