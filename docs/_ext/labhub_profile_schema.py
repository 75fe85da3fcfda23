"""Sphinx extension: the course profile reference, generated from profile.schema.yaml.

Provides the directive ``labhub-profile-schema``. It reads
``hub_ext/core/profiles/data/profile.schema.yaml`` (the single schema that drives validation,
editor hints and this page) and renders one table per top-level field group: field path, type, default,
accepted values and description. Nested mappings and list items are flattened into dotted paths
(``sessions[].start``). The page is rebuilt whenever the schema changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from docnodes import entry, inline
from docutils import nodes
from docutils.parsers.rst import Directive, directives

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "hub_ext" / "core" / "profiles" / "data" / "profile.schema.yaml"

Row = tuple[str, str, str, str, str]


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _type_of(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of"
    kind = node.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    items = node.get("items")
    if kind == "array" and isinstance(items, dict):
        inner = "mapping" if items.get("type") == "object" else _type_of(items)
        text = f"list of {inner}"
    if text == "object":
        text = "mapping"
    return text


def _accepted(node: dict[str, Any]) -> str:
    parts: list[str] = []
    for source in (node, node.get("items") if isinstance(node.get("items"), dict) else {}):
        if "enum" in source:
            parts.append(", ".join(str(v) for v in source["enum"]))
        if "x-accepted" in source:
            parts.append(str(source["x-accepted"]))
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("maxLength", "length <="),
    ):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    return "; ".join(parts)


def rows(schema: dict[str, Any], prefix: str = "") -> list[Row]:
    """(field, type, default, accepted, description) of every field below ``schema``."""
    out: list[Row] = []
    required = set(schema.get("required") or ())
    for name, node in (schema.get("properties") or {}).items():
        key = f"{prefix}.{name}" if prefix else name
        default = json.dumps(node["default"]) if "default" in node else ""
        description = str(node.get("description", ""))
        if name in required:
            description = f"Required. {description}"
        out.append((key, _type_of(node), default, _accepted(node), description))
        if node.get("properties"):
            out.extend(rows(node, key))
        items = node.get("items")
        if isinstance(items, dict) and items.get("properties"):
            out.extend(rows(items, f"{key}[]"))
    return out


def _table(section: list[Row]) -> nodes.table:
    table = nodes.table(classes=["labhub-profile-schema"])
    group = nodes.tgroup(cols=5)
    table += group
    for width in (24, 12, 10, 22, 32):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    header = nodes.row()
    for title in ("Field", "Type", "Default", "Accepted", "Description"):
        header += entry(nodes.Text(title))
    head += header
    group += head
    body = nodes.tbody()
    for key, kind, default, accepted, description in section:
        row = nodes.row()
        row += entry(nodes.literal(key, key))
        row += entry(nodes.Text(kind))
        row += entry(nodes.literal(default, default)) if default else entry()
        row += entry(nodes.Text(accepted))
        row += entry(*inline(description))
        body += row
    group += body
    return table


class ProfileSchemaDirective(Directive):
    """``labhub-profile-schema``: the fields of a course profile."""

    has_content = False
    option_spec = {"section": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        env.note_dependency(str(SCHEMA))
        schema = load_schema()
        wanted = self.options.get("section")
        all_rows = rows(schema)
        result: list[nodes.Node] = []
        if not wanted:
            result.append(nodes.paragraph("", "", *inline(str(schema.get("description", "")))))
        for name in schema.get("properties") or {}:
            if wanted and name != wanted:
                continue
            section = [
                r for r in all_rows if r[0] == name or r[0].startswith((f"{name}.", f"{name}["))
            ]
            result.append(nodes.rubric(name, name))
            result.append(_table(section))
        return result


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("labhub-profile-schema", ProfileSchemaDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
