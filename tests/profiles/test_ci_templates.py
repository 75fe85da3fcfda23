"""The lecturer pipeline templates are valid YAML, run every stage, and call only `labhub profiles`
commands that exist, with the arguments they accept."""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_ext.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GITLAB = ROOT / ".gitlab-ci.yml"
GITHUB = ROOT / ".github/workflows/profiles.yml"
STAGES = ["validate", "lint", "build", "scan", "pin"]


def _scripts(node: Any) -> list[str]:
    """Every shell line of a pipeline file (script entries and `run:` blocks)."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "run"):
                items = value if isinstance(value, list) else [value]
                for item in items:
                    out.extend(str(item).splitlines())
            else:
                out.extend(_scripts(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_scripts(item))
    return out


def _labhub_calls(lines: list[str]) -> list[list[str]]:
    calls = []
    for line in lines:
        for match in re.finditer(r"labhub (profiles [^|;>&]*)", line):
            calls.append(shlex.split(match.group(1).replace("$", "X")))
    return calls


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_gitlab_pipeline_has_all_stages() -> None:
    data = _load(GITLAB)
    assert data["stages"] == STAGES
    for stage in STAGES:
        assert data[stage]["stage"] == stage and data[stage]["script"]
    assert data["build"]["image"]["name"] == "$KANIKO_IMAGE"
    assert "kaniko" in data["variables"]["KANIKO_IMAGE"] and data["scan"]["allow_failure"] is True
    assert all(isinstance(line, str) for job in STAGES for line in data[job]["script"])


def test_github_workflow_has_all_jobs() -> None:
    data = _load(GITHUB)
    assert list(data["jobs"]) == STAGES
    assert data["jobs"]["pin"]["needs"] == ["build"] and data["jobs"]["scan"]["continue-on-error"]
    assert "buildah push --digestfile" in "\n".join(_scripts(data["jobs"]["build"]))
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads the key `on` as a boolean
    assert set(triggers) == {"pull_request", "push"}


@pytest.mark.parametrize("path", [GITLAB, GITHUB], ids=["gitlab", "github"])
def test_pipeline_validates_lints_builds_and_pins(path: Path) -> None:
    lines = _scripts(_load(path))
    text = "\n".join(lines)
    calls = _labhub_calls(lines)
    commands = [call[1] for call in calls]
    assert {"validate", "list", "pin"} <= set(commands)
    assert "xargs -0 -r hadolint" in text
    validate = next(call for call in calls if call[1] == "validate")
    assert "--policy" in validate
    pin = next(call for call in calls if call[1] == "pin")
    assert pin[2:4] == ["XSLUG", "XREF"]


@pytest.mark.parametrize("path", [GITLAB, GITHUB], ids=["gitlab", "github"])
def test_every_labhub_call_parses(path: Path) -> None:
    parser = build_parser()
    for call in _labhub_calls(_scripts(_load(path))):
        args = parser.parse_args(call)
        assert args.func is not None, call


@pytest.mark.parametrize("path", [GITLAB, GITHUB], ids=["gitlab", "github"])
def test_registry_variables_documented(path: Path) -> None:
    head = path.read_text().split("\n\n")[0]
    for name in ("LABHUB_VERSION", "REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD", "SCAN_IMAGES"):
        assert re.search(rf"\b{name}\b", head), name
