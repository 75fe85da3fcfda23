import json

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
    assert {"model": "A100-SXM4-80GB", "count": 8} in doc["alternatives"]
    assert set(doc) >= {"layouts", "stranded"}


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
    assert "at most 40 seats" in reference_lab_report()
