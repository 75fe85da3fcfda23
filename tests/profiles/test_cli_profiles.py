import json
import shutil
from pathlib import Path

from hub_ext.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_examples_validate(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["profiles", "validate", str(ROOT / "profiles"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] == ["cv-201", "intro-python", "lecturer-sandbox", "ml-101"]


def test_slug_must_match_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "wrong")
    assert main(["profiles", "validate", str(tmp_path)]) == 1
    assert (
        "wrong/profile.yaml:2: slug: 'ml-101' must equal the folder name (allowed: wrong)"
        in capsys.readouterr().out
    )


def test_show_unknown(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["profiles", "show", "nope", "--dir", str(ROOT / "profiles")]) == 1
    assert "ml-101" in capsys.readouterr().err


def test_schema_is_json_and_strict(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["profiles", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert all("description" in v for v in schema["properties"].values())


def test_pin_updates_lock(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    shutil.copytree(ROOT / "profiles/cv-201", tmp_path / "cv-201")
    digest = "sha256:" + "a" * 64
    image = "registry.lab.example.edu/courses/ml-101:2026.11"
    assert main(["profiles", "pin", "ml-101", digest, "--dir", str(tmp_path)]) == 0
    assert main(["profiles", "pin", "cv-201", "sha256:bad", "--dir", str(tmp_path)]) == 2
    assert "is not a digest" in capsys.readouterr().err
    other = f"registry.lab.example.edu/courses/cv-201:1.0@{digest}"
    assert main(["profiles", "pin", "cv-201", other, "--dir", str(tmp_path)]) == 2
    assert "is not the image of cv-201" in capsys.readouterr().err
    assert main(["profiles", "pin", "nope", digest, "--dir", str(tmp_path)]) == 1
    cv = f"registry.lab.example.edu/courses/cv-201:2026.11@{digest}"
    assert main(["profiles", "pin", "cv-201", cv, "--dir", str(tmp_path)]) == 0
    lines = (tmp_path / "images.lock.yaml").read_text().splitlines()
    assert lines[1:] == [f"cv-201: {cv}", f"ml-101: {image}@{digest}"]
    assert main(["profiles", "show", "ml-101", "--dir", str(tmp_path)]) == 0
    shown = json.loads(_last_json(capsys))
    assert shown["image"]["digest"] == digest


def _last_json(capsys) -> str:  # type: ignore[no-untyped-def]
    out: str = capsys.readouterr().out
    return out[out.index("{") :]


def test_validate_text_names_file_line_path_and_allowed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    profile = tmp_path / "ml-101/profile.yaml"
    profile.write_text(profile.read_text().replace("cpu_limit: 4", "cpu_limt: 4"))
    assert main(["profiles", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert (
        "ml-101/profile.yaml:9: resources.cpu_limt: unknown field 'cpu_limt'; did you mean "
        "'cpu_limit'? (allowed: cpu_guarantee, cpu_limit, memory_guarantee, memory_limit)"
    ) in out
    assert out.rstrip().endswith("0 valid profile(s), 1 error(s)")


def test_validate_uses_policy_and_reports_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(ROOT / "profiles/ml-101", tmp_path / "ml-101")
    (tmp_path / "policy.yaml").write_text("max_cpu: 2\n")
    assert main(["profiles", "validate", str(tmp_path), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] == []
    assert {e["path"] for e in out["errors"]} == {"resources.cpu_guarantee", "resources.cpu_limit"}
    assert out["errors"][0]["line"] == 9 and out["errors"][0]["allowed"] == "<= 2"
    (tmp_path / "policy.yaml").write_text("max_gpus: 2\n")
    assert main(["profiles", "validate", str(tmp_path)]) == 2
    assert "unknown key 'max_gpus'" in capsys.readouterr().err


def test_validate_duplicate_slug_across_dirs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b"):
        shutil.copytree(ROOT / "profiles/intro-python", tmp_path / name / "intro-python")
    assert main(["profiles", "validate", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "duplicate slug 'intro-python'" in capsys.readouterr().out
