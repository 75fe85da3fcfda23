"""Sphinx extension: the Helm chart's values reference, generated from values.schema.yaml.

Provides the directive ``labhub-chart-values``. It reads ``helm/labhub/values.schema.yaml`` (the
single source of the chart's values schema) and the chart's ``values.yaml`` (for defaults) and
renders one table per top-level section: key, type, default and description. The page is
rebuilt whenever either file changes.
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
CHART = ROOT / "helm" / "labhub"
SCHEMA = CHART / "values.schema.yaml"
VALUES = CHART / "values.yaml"
_MISSING = object()


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    """The schema with anchors expanded and ``x-`` helper sections dropped."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not str(k).startswith("x-")}


def rows(
    schema: dict[str, Any], defaults: Any, prefix: str = ""
) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, description) of every value below ``schema``, depth first."""
    out: list[tuple[str, str, Any, str]] = []
    for name, node in (schema.get("properties") or {}).items():
        key = f"{prefix}.{name}" if prefix else name
        default = defaults.get(name, _MISSING) if isinstance(defaults, dict) else _MISSING
        out.append((key, _type_of(node), default, node.get("description", "")))
        if node.get("properties"):
            out.extend(rows(node, default if default is not _MISSING else {}, key))
        items = node.get("items")
        if isinstance(items, dict) and items.get("properties"):
            out.extend(rows(items, {}, f"{key}[]"))
    return out


def _type_of(node: dict[str, Any]) -> str:
    kind = node.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in node:
        text += ": " + ", ".join(str(v) for v in node["enum"])
    elif kind == "array" and isinstance(node.get("items"), dict) and "type" in node["items"]:
        text = f"array of {node['items']['type']}"
    return text


def _default_text(value: Any) -> str:
    if value is _MISSING:
        return ""
    if isinstance(value, dict) and value and any(isinstance(v, dict) for v in value.values()):
        return "(see below)"
    return json.dumps(value)


def _table(section_rows: list[tuple[str, str, Any, str]]) -> nodes.table:
    table = nodes.table(classes=["labhub-chart-values"])
    group = nodes.tgroup(cols=4)
    table += group
    for width in (30, 15, 15, 40):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    header = nodes.row()
    for title in ("Key", "Type", "Default", "Description"):
        header += entry(nodes.Text(title))
    head += header
    group += head
    body = nodes.tbody()
    for key, kind, default, description in section_rows:
        row = nodes.row()
        row += entry(nodes.literal(key, key))
        row += entry(nodes.Text(kind))
        text = _default_text(default)
        row += entry(nodes.literal(text, text)) if text else entry()
        row += entry(*inline(description))
        body += row
    group += body
    return table


class ChartValuesDirective(Directive):
    """``labhub-chart-values``: the values reference of the LabHub chart."""

    has_content = False
    option_spec = {"section": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        env.note_dependency(str(SCHEMA))
        env.note_dependency(str(VALUES))
        schema = load_schema()
        defaults = yaml.safe_load(VALUES.read_text(encoding="utf-8")) or {}
        wanted = self.options.get("section")
        result: list[nodes.Node] = []
        for name, node in (schema.get("properties") or {}).items():
            if wanted and name != wanted:
                continue
            result.append(nodes.rubric(name, name))
            result.append(nodes.paragraph("", "", *inline(node.get("description", ""))))
            top = (name, _type_of(node), defaults.get(name, _MISSING), node.get("description", ""))
            section_rows = (
                rows(node, defaults.get(name, {}), name) if node.get("properties") else [top]
            )
            result.append(_table(section_rows))
        return result


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("labhub-chart-values", ChartValuesDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
