"""One course policy: the chart's policy.yaml is the file lecturers validate against."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from chart_render import ROOT, one, render, render_error

from hub_ext.core.profiles.policy import parse_policy

FULL = "gpulab-labhub"
# profiles/policy.yaml's keys as chart values (labhub.policy.*)
CHART_KEYS = {
    "allowed_registries": "allowedRegistries",
    "max_cpu": "maxCpu",
    "max_memory": "maxMemory",
    "max_home_size": "maxHomeSize",
    "allowed_slice_types": "allowedSliceTypes",
    "allowed_volumes": "allowedVolumes",
    "allowed_storage_classes": "allowedStorageClasses",
}


def _policy(docs: list[dict[str, object]]) -> str:
    data = one(docs, "ConfigMap", f"{FULL}-hub")["data"]
    assert isinstance(data, dict)
    return str(data["policy.yaml"])


def _validate(policy_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hub_ext",
            "profiles",
            "validate",
            str(ROOT / "profiles"),
            "--policy",
            str(policy_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rendered_default_policy_validates_the_courses(tmp_path: Path) -> None:
    rendered = tmp_path / "policy.yaml"
    rendered.write_text(_policy(render("defaults-values.yaml")))
    parse_policy(rendered.read_text())  # the hub's loader accepts every key
    result = _validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 valid profile(s), 0 error(s)" in result.stdout
    assert "registry.lab.example.edu" in yaml.safe_load(rendered.read_text())["allowed_registries"]


def test_lecturers_policy_file_renders_to_the_same_policy(tmp_path: Path) -> None:
    lecturers = yaml.safe_load((ROOT / "profiles" / "policy.yaml").read_text())
    values = {"labhub": {"policy": {CHART_KEYS[k]: v for k, v in lecturers.items()}}}
    file = tmp_path / "policy-values.yaml"
    file.write_text(yaml.safe_dump(values))
    rendered = _policy(render("defaults-values.yaml", file))
    assert parse_policy(rendered) == parse_policy((ROOT / "profiles/policy.yaml").read_text())
    (tmp_path / "policy.yaml").write_text(rendered)
    result = _validate(tmp_path / "policy.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_policy_the_loader_would_reject_fails_at_render(tmp_path: Path) -> None:
    for bad in ("labhub.policy.maxSlicesPerUser=1", "labhub.policy.maxStorage=1Gi"):
        assert "additional properties" in render_error("defaults-values.yaml", sets=(bad,)).lower()
    err = render_error("defaults-values.yaml", sets=("labhub.policy.maxMemory=lots",))
    assert "/labhub/policy/maxMemory" in err


def test_stricter_chart_policy_is_reported_by_validate(tmp_path: Path) -> None:
    sets = ("labhub.policy.allowedSliceTypes={1g.10gb}",)
    (tmp_path / "policy.yaml").write_text(_policy(render("defaults-values.yaml", sets=sets)))
    result = _validate(tmp_path / "policy.yaml")
    assert result.returncode == 1
    assert "cv-201/profile.yaml" in result.stdout and "2g.10gb" in result.stdout


def test_git_profiles_default_to_the_profiles_folder() -> None:
    docs = render(
        "defaults-values.yaml",
        sets=("labhub.profiles.source=git", "labhub.profiles.git.repo=https://git.example.edu/l"),
    )
    values = yaml.safe_load(
        __import__("base64").b64decode(one(docs, "Secret", f"{FULL}-hub")["data"]["values.yaml"])
    )
    assert values["computed"]["profilesDir"] == "/srv/labhub/profiles-git/current/profiles"


def test_inline_profiles_are_mounted_as_course_folders(tmp_path: Path) -> None:
    docs = render("single-strategy-values.yaml")
    hub = one(docs, "Deployment", f"{FULL}-hub")
    volume = next(v for v in hub["spec"]["template"]["spec"]["volumes"] if v["name"] == "profiles")
    data = one(docs, "ConfigMap", f"{FULL}-profiles")["data"]
    courses = tmp_path / "profiles"
    for item in volume["configMap"]["items"]:  # as the kubelet projects the ConfigMap
        target = courses / item["path"]
        target.parent.mkdir(parents=True)
        target.write_text(data[item["key"]])
    from hub_ext.adapters.profile_source import read_profile_dirs

    result, present = read_profile_dirs([courses])
    assert present == sorted(data_key.removesuffix(".yaml") for data_key in data)
    assert [p.slug for p in result.profiles] == present, result.errors
