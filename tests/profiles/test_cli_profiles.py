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
    assert "slug: must equal the folder name" in capsys.readouterr().out


def test_show_unknown(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["profiles", "show", "nope", "--dir", str(ROOT / "profiles")]) == 1
    assert "ml-101" in capsys.readouterr().err


def test_schema_is_json_and_strict(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["profiles", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert all("description" in v for v in schema["properties"].values())


def test_pin_updates_lock(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    assert main(["profiles", "pin", "ml-101", digest, "--dir", str(tmp_path)]) == 0
    assert main(["profiles", "pin", "ml-101", "sha256:bad", "--dir", str(tmp_path)]) == 2
    assert (tmp_path / "images.lock.yaml").read_text() == f"ml-101: {digest}\n"
