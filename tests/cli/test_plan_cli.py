import json
from pathlib import Path

import pytest

from hub_ext.cli import main
from hub_ext.cli.plan import reference_lab_report


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_reference_lab_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        "--gpus",
        "A100-40GB=10",
        "--seats",
        "50",
        "--min-gpu-memory",
        "8GiB",
        "--format",
        "json",
    )
    doc = json.loads(out)
    assert code == 3
    assert doc["feasible"] is False and doc["seats_requested"] == 50 and doc["seats_max"] == 40
    alternatives = {(a["model"], a["count"]) for a in doc["alternatives"]}
    assert {("A100-SXM4-40GB", 13), ("A100-SXM4-80GB", 8), ("H100-SXM5-80GB", 8)} <= alternatives
    assert set(doc) >= {"layouts", "stranded"}
    # one layout per GPU: four 1g.10gb instances on each (or 1g.10gb plus three 2g.10gb)
    assert [lay["gpu"] for lay in doc["layouts"]] == list(range(10))
    assert all(len(lay["instances"]) == 4 for lay in doc["layouts"])
    assert doc["stranded"] == {"memory_slices": 0, "compute_slices": 0}


def test_feasible_and_mig_parted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "plan",
        "--gpus",
        "H100-80GB=8",
        "--seats",
        "50",
        "--min-gpu-memory",
        "8GiB",
        "--format",
        "mig-parted",
    )
    assert code == 0 and out.startswith("version: v1\nmig-configs:")


@pytest.mark.parametrize(
    "argv",
    [
        ["--gpus", "V100=1", "--seats", "5", "--min-gpu-memory", "8GiB"],
        ["--gpus", "A100-40GB=-1", "--seats", "5", "--min-gpu-memory", "8GiB"],
        ["--gpus", "A100-40GB=1", "--seats", "5", "--min-gpu-memory", "eight"],
    ],
)
def test_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, "plan", *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_mig_profiles_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "mig", "profiles", "NVIDIA-A100-SXM4-40GB", "--format", "json")
    rows = json.loads(out)
    assert code == 0
    row = next(r for r in rows if r["name"] == "2g.10gb")
    assert row["placements"] == [{"start": s, "size": 2} for s in (0, 2, 4)]


def test_reference_lab_report() -> None:
    assert "Feasible: no (40 of 50 seats)" in reference_lab_report()


NODES = """nodes:
  - name: room-a-gpu1
    gpus: {A100-40GB: 4}
  - name: room-b-gpu1
    gpus: {A100-80GB: 2, A30-24GB: 2}
"""


def test_several_requirements_per_node(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nodes.yaml"
    path.write_text(NODES)
    argv = ["plan", "--nodes", str(path), "--require", "20:8GiB", "--require", "2::3g.20gb"]
    code, out, _ = run(capsys, *argv, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["feasible"] and doc["seats_max"] == 22
    assert [r["satisfied"] for r in doc["requirements"]] == [20, 2]
    assert {n["node"] for n in doc["nodes"]} == {"room-a-gpu1", "room-b-gpu1"}
    assert len(doc["layouts"]) == 8
    code, out, _ = run(capsys, *argv, "--format", "mig-parted")
    assert code == 0 and out.startswith("version: v1\nmig-configs:\n")
    for node in doc["nodes"]:
        assert f"  {node['mig_config']}:" in out


def test_require_reference_lab(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "plan", "--gpus", "A100-40GB=10", "--require", "50:8GiB", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 3 and doc["seats_max"] == 40
    assert {
        "kind": "more-gpus",
        "model": "A100-SXM4-40GB",
        "count": 13,
        "extra": 3,
        "proven": True,
    } in doc["alternatives"]
    # 5 seats of 8 GiB per whole A100-40GB without MIG: the demand fits with sharing
    sharing = [a for a in doc["alternatives"] if a["kind"] == "sharing"]
    assert sharing == [
        {
            "kind": "sharing",
            "model": None,
            "count": 10,
            "extra": 0,
            "proven": True,
            "allow_sharing": True,
            "seats": 50,
        }
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--gpus", "A100-40GB=1", "--require", "x:8GiB"],
        ["--gpus", "A100-40GB=1", "--require", "3:"],
        ["--gpus", "A100-40GB=1", "--require", "3:lots"],
        ["--nodes", "/nonexistent/nodes.yaml", "--require", "3:8GiB"],
        ["--require", "3:8GiB"],
        ["--gpus", "A100-40GB=1"],
    ],
)
def test_bad_multi_input(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, "plan", *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_every_answer_proven_and_sharing_said(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpus", "A100-40GB=10", "--require", "50:8GiB"]
    code, out, err = run(capsys, *argv, "--format", "json")
    doc = json.loads(out)
    assert code == 3 and doc["seats_max"] == 40 and doc["distinct_layouts_proven"] is True
    assert all(a["proven"] for a in doc["alternatives"] if a["kind"] == "more-gpus")
    assert err == ""
    code, out, _ = run(capsys, *argv)
    assert "Distinct layouts: 1\n" in out and "not ruled out" not in out
    assert "Fits without MIG: whole GPUs time-sliced serve all 50 seats" in out
    # and with sharing allowed, that is the plan: every GPU shared, no alternatives
    code, out, _ = run(capsys, *argv, "--allow-sharing")
    assert code == 0 and "Feasible: yes (50 of 50 seats)" in out
    assert "nvidia.com/mig.config=all-disabled" in out and "Fits without MIG" not in out


def test_exact_is_accepted_and_says_it_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpus", "A100-40GB=10", "--require", "50:8GiB", "--format", "json"]
    code, out, err = run(capsys, *argv, "--exact")
    assert code == 3 and json.loads(out)["seats_max"] == 40
    assert err.count("\n") == 1 and "--exact has no effect" in err


@pytest.mark.parametrize("limit", ["0", "-1", "nan", "soon"])
def test_bad_time_limit(capsys: pytest.CaptureFixture[str], limit: str) -> None:
    argv = ["plan", "--gpus", "A100-40GB=1", "--require", "3:8GiB", "--time-limit", limit]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "--time-limit" in err and "Traceback" not in err


def test_time_limit_hit_says_what_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpus", "A100-40GB=250,A100-80GB=250,H100-80GB=250,A30-24GB=250"]
    argv += ["--require", "1550:8GiB", "--require", "465::3g.20gb", "--require", "620:20GB"]
    code, out, err = run(capsys, *argv, "--require", "465:40GB", "--time-limit", "1e-9")
    assert code == 4 and out == "" and err.count("\n") == 1
    assert "did not prove" in err and "--time-limit" in err
