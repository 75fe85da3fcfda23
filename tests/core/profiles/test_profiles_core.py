import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.profiles.build import parse_profile
from hub_ext.core.profiles.model import parse_policy, to_spawn_plan

ROOT = Path(__file__).resolve().parents[3]
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


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises(text: str) -> None:
    profile, errors = parse_profile(text, "p")
    assert (profile is None) != (errors == [])


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_KEYS = st.sampled_from(
    ["slug", "image", "gpu", "sessions", "resources", "storage", "env", "limits", "start", "x"]
)
_YAML_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_YAML_DATA)
def test_never_raises_on_arbitrary_yaml(data: object) -> None:
    profile, errors = parse_profile(yaml.safe_dump(data), "p")
    assert (profile is None) != (errors == [])
    assert all(isinstance(e.message, str) and e.file == "p" for e in errors)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEYS, _SCALARS | st.lists(_SCALARS, max_size=3), max_size=4))
def test_never_raises_on_mutated_example(changes: dict[str, object]) -> None:
    data = yaml.safe_load(ML)
    data.update(changes)
    profile, errors = parse_profile(yaml.safe_dump(data), "p")
    assert (profile is None) != (errors == [])


def test_sizes_and_limits_parsed() -> None:
    text = ML.replace("memory_limit: 16GiB", "memory_limit: 20GB")
    profile, errors = parse_profile(text, "p")
    assert errors == [] and profile is not None
    assert profile.resources.memory_guarantee_bytes == 16 * 2**30
    assert profile.resources.memory_limit_bytes == 20 * 10**9
    assert profile.storage.home_bytes == 250 * 2**30
    assert profile.storage.shares[0].name == "datasets-imagenet"
    assert profile.storage.shares[0].read_only is True
    assert profile.storage.lecturer_share is not None
    assert profile.storage.lecturer_share.read_only is False
    assert (profile.limits.max_runtime_seconds, profile.limits.idle_timeout_seconds) == (
        28800,
        3600,
    )
    plan = to_spawn_plan(profile)
    assert plan.memory_limit_bytes == 20 * 10**9
    assert [v.mount_path for v in plan.volumes] == ["/shared/imagenet", "/shared/course"]
    assert plan.env == (("MPLBACKEND", "Agg"),)


def test_min_gpu_memory_instead_of_slice_types() -> None:
    text = ML.replace("slice_types: [1g.10gb]", "min_gpu_memory: 10GB")
    profile, errors = parse_profile(text, "p")
    assert errors == [] and profile is not None and profile.gpu is not None
    assert profile.gpu.slice_types == () and profile.gpu.min_gpu_memory_bytes == 10**9 * 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_cpu: -1\n", "policy: max_cpu must be a positive number of cores"),
        ("max_memory: lots\n", "policy: max_memory: cannot parse size 'lots'"),
        ("allowed_registries: docker.io\n", "policy: allowed_registries must be a list of names"),
        ("max_gpus: 2\n", "policy: unknown key 'max_gpus'; accepted: allowed_registries"),
        ("- a\n", "policy must be a mapping of allowed_registries"),
    ],
)
def test_bad_policy_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_policy(text)


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
        ("registry.lab.example.edu/", "docker.io/", "image", "not allowed"),
        ("cpu_limit: 4", "cpu_limit: 64", "resources.cpu_limit", "above the policy maximum"),
        ("cpu_limit: 4", "cpu_limit: four", "resources.cpu_limit", "expected number"),
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
