"""``labhub profiles validate --lab``: slice types the lab does not offer, from a cluster file
or a live cluster's kubeconfig."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import yaml

from hub_ext.cli import main
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config, reference_lab_path

ROOT = Path(__file__).resolve().parents[2]
LAB = {
    "name": "small",
    "nodes": [
        {
            "name": "gpu-a",
            "zone": "room-a",
            "cpu": 16,
            "memory": "64Gi",
            "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"2g.10gb": 3}},
        }
    ],
}


def _courses(tmp_path: Path) -> Path:
    for course in ("ml-101", "cv-201"):
        shutil.copytree(ROOT / "profiles" / course, tmp_path / "courses" / course)
    return tmp_path / "courses"


def test_reference_lab_lacks_the_2g_slices_of_cv_201(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    courses = _courses(tmp_path)
    assert main(["profiles", "validate", str(courses), "--lab", str(reference_lab_path())]) == 1
    out = capsys.readouterr().out
    assert "cv-201/profile.yaml: gpu: slice type '2g.10gb' is not offered by the lab" in out
    assert "(offered: 1g.10gb)" in out
    assert "ml-101" not in out.split("warning:")[0]


def test_cluster_file_that_offers_the_slices(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    courses = _courses(tmp_path)
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump(LAB))
    assert main(["profiles", "validate", str(courses), "--lab", str(lab), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] == ["cv-201", "ml-101"]
    assert [m.split(":")[0] for m in doc["lab_errors"]] == ["ml-101/profile.yaml"]  # 1g.10gb


def test_unreadable_lab_file_is_a_usage_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    courses = _courses(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: []\n")
    assert main(["profiles", "validate", str(courses), "--lab", str(bad)]) == 2
    assert "neither a kubeconfig nor a valid cluster file" in capsys.readouterr().err


def test_live_cluster_through_its_kubeconfig(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    courses = _courses(tmp_path)

    async def run() -> int:
        async with DevCluster(parse_cluster_config(LAB), tmp_path / "cluster") as dev:
            kubeconfig = str(dev.kubeconfig)
            return await asyncio.to_thread(
                main, ["profiles", "validate", str(courses), "--lab", kubeconfig]
            )

    assert asyncio.run(run()) == 1
    out = capsys.readouterr().out
    assert "ml-101/profile.yaml: gpu: slice type '1g.10gb' is not offered" in out
    assert "(offered: 2g.10gb)" in out


def test_a_folder_without_courses_is_an_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "repo").mkdir()
    assert main(["profiles", "validate", str(tmp_path / "repo")]) == 1
    assert "found 0 courses at" in capsys.readouterr().err


@pytest.mark.parametrize("course", ["ml-101"])
def test_lab_offering_everything_passes(tmp_path: Path, course: str) -> None:
    shutil.copytree(ROOT / "profiles" / course, tmp_path / "c" / course)
    assert (
        main(["profiles", "validate", str(tmp_path / "c"), "--lab", str(reference_lab_path())]) == 0
    )
