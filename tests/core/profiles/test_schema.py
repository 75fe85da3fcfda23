"""The profile schema is a valid JSON Schema, documents every field, and the generated reference
page lists every field of it."""

import importlib.util
import sys
from pathlib import Path
from typing import Any

import jsonschema

from hub_ext.core.profiles.validation import load_schema

ROOT = Path(__file__).resolve().parents[3]


def _docs_extension() -> Any:
    if str(ROOT / "docs/_ext") not in sys.path:
        sys.path.insert(0, str(ROOT / "docs/_ext"))  # docnodes, as conf.py
    spec = importlib.util.spec_from_file_location(
        "labhub_profile_schema", ROOT / "docs/_ext/labhub_profile_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fields(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, node in (schema.get("properties") or {}).items():
        key = f"{prefix}.{name}" if prefix else name
        out.append((key, node))
        out.extend(_fields(node, key))
        if isinstance(node.get("items"), dict):
            out.extend(_fields(node["items"], f"{key}[]"))
    return out


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_every_field_is_described_and_strict() -> None:
    fields = _fields(load_schema())
    assert len(fields) >= 35
    for key, node in fields:
        assert node.get("description"), f"{key} has no description"
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{key} accepts unknown keys"


def test_reference_rows_cover_every_field() -> None:
    module = _docs_extension()
    rows = module.rows(load_schema())
    assert [r[0] for r in rows] == [key for key, _ in _fields(load_schema())]
    by_key = {r[0]: r for r in rows}
    assert by_key["sessions[].weekday"][3] == "mon, tue, wed, thu, fri, sat, sun"
    assert by_key["resources.memory_limit"][1:3] == ("string or integer", '"16GiB"')
    assert by_key["slug"][4].startswith("Required.")
    assert by_key["sessions"][1] == "list of mapping"


def test_published_schema_matches(capsys) -> None:  # type: ignore[no-untyped-def]
    from hub_ext.cli import main

    assert main(["profiles", "schema"]) == 0
    published = (ROOT / "profiles/profile.schema.json").read_text()
    assert capsys.readouterr().out == published, (
        "run: labhub profiles schema > profiles/profile.schema.json"
    )
