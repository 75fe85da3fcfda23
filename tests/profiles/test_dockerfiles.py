"""Every Dockerfile under images/ and profiles/ passes hadolint and follows LabHub's image rules:
OCI labels, a non-root user (uid 1000) at runtime, no floating tags, exactly pinned packages."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted([*ROOT.glob("images/*/Dockerfile"), *ROOT.glob("profiles/*/Dockerfile")])
REQUIREMENTS = sorted(ROOT.glob("images/*/requirements.txt"))


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_layered_images_exist() -> None:
    names = {p.parent.name for p in ROOT.glob("images/*/Dockerfile")}
    assert {"hub", "singleuser-base", "singleuser-ml", "singleuser-extras"} <= names


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids)
def test_hadolint_clean(path: Path) -> None:
    result = subprocess.run([str(HADOLINT), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=_ids)
def test_runs_as_uid_1000_with_oci_labels(path: Path) -> None:
    text = path.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] == "1000", "the last USER must be 1000 (no root at runtime)"
    assert 'org.opencontainers.image.title="' in text
    for base in re.findall(r"^FROM\s+(\S+)", text, re.M):
        assert not base.endswith(":latest") and (":" in base or base.startswith("${")), base


@pytest.mark.parametrize("path", REQUIREMENTS, ids=_ids)
def test_requirements_pinned_exactly(path: Path) -> None:
    lines = [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "--"))
    ]
    assert lines, "an image requirements file must name its packages"
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", line), line
