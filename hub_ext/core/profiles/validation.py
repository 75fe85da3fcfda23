"""Schema-driven validation of course profile YAML with line numbers of every node.

:func:`load_marked` reads YAML safely (no anchors or aliases, no duplicate keys) and records the
line of every mapping key and sequence item by its field path; :func:`schema_errors` checks the
data against ``profile.schema.yaml`` and turns each JSON Schema error into a
:class:`ProfileError` naming the file, line, field path, what is wrong and what is accepted.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

MAX_PROFILE_BYTES = 256 * 1024
MAX_NODES = 20_000
FORBIDDEN_KEYS = (
    "privileged",
    "hostPath",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "runAsUser",
    "securityContext",
    "capabilities",
    "allowPrivilegeEscalation",
)

YAML_FORMS = "plain YAML: one document, each key once, no anchors or aliases"
PathPart = str | int
FieldPath = tuple[PathPart, ...]


@dataclass(frozen=True)
class ProfileError:
    """One validation problem: where it is, what is wrong and what is allowed."""

    file: str
    line: int | None
    path: str
    message: str
    allowed: str = ""

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        hint = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{loc}: {self.path or '<root>'}: {self.message}{hint}"


class ProfileYamlError(ValueError):
    """The text is not acceptable YAML; carries the line (1-based) when known."""

    def __init__(self, message: str, line: int | None, allowed: str = YAML_FORMS) -> None:
        super().__init__(message)
        self.line = line
        self.allowed = allowed


@dataclass(frozen=True)
class MarkedDocument:
    """Plain data of a YAML document plus the line of every node by field path."""

    data: Any
    lines: Mapping[FieldPath, int]

    def line(self, path: Sequence[PathPart]) -> int | None:
        """Line of ``path``, or of its nearest recorded parent."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)


def format_path(path: Sequence[PathPart]) -> str:
    """``("sessions", 0, "start")`` -> ``sessions[0].start``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader refusing anchors and aliases (no expansion bombs)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError("", None, "anchors and aliases are not allowed", mark)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                "", None, "anchors and aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def load_marked(text: str) -> MarkedDocument:
    """Parse ``text``; raises :class:`ProfileYamlError` with a line number on bad input."""
    if len(text.encode("utf-8", "replace")) > MAX_PROFILE_BYTES:
        raise ProfileYamlError("file too large", None, f"at most {MAX_PROFILE_BYTES} bytes")
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return MarkedDocument(None, {(): 1})
        lines: dict[FieldPath, int] = {(): node.start_mark.line + 1}
        _walk(node, (), lines)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        text = f"{context}, {problem}" if context else problem
        raise ProfileYamlError(f"invalid YAML: {text}", line) from None
    finally:
        loader.dispose()
    return MarkedDocument(data, lines)


def _walk(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int]) -> None:
    if len(lines) > MAX_NODES:
        raise yaml.MarkedYAMLError("", None, f"more than {MAX_NODES} nodes", node.start_mark)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise yaml.MarkedYAMLError("", None, "keys must be plain text", key.start_mark)
            sub = (*path, str(key.value))
            if sub in lines:
                raise yaml.MarkedYAMLError("", None, f"duplicate key {key.value!r}", key.start_mark)
            lines[sub] = key.start_mark.line + 1
            _walk(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines)


@functools.cache
def load_schema() -> dict[str, Any]:
    """The course profile JSON Schema shipped with LabHub."""
    text = resources.files("hub_ext.core.profiles").joinpath("data/profile.schema.yaml").read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def forbidden_errors(doc: MarkedDocument, file: str) -> list[ProfileError]:
    """Privileged or host-access settings anywhere in the document."""
    out: list[ProfileError] = []
    for path in sorted(doc.lines, key=lambda p: (doc.lines[p], format_path(p))):
        if path and isinstance(path[-1], str) and path[-1] in FORBIDDEN_KEYS:
            out.append(
                ProfileError(
                    file,
                    doc.lines[path],
                    format_path(path),
                    "security: privileged or host access settings are refused",
                    "none; the hub sets the security context",
                )
            )
    return out


_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "mapping",
    type(None): "null",
}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _accepted(schema: Mapping[str, Any]) -> str:
    if "x-accepted" in schema:
        return str(schema["x-accepted"])
    if "enum" in schema:
        return ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind) if kind else ""


def _convert(
    error: jsonschema.ValidationError, doc: MarkedDocument, file: str
) -> list[ProfileError]:
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        return _unknown_keys(error, doc, file)
    return [_convert_one(error, doc, file)]


def _unknown_keys(
    error: jsonschema.ValidationError, doc: MarkedDocument, file: str
) -> list[ProfileError]:
    path: FieldPath = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    known = sorted((schema.get("properties") or {}).keys())
    out = []
    for key in sorted(str(k) for k in error.instance if k not in known):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        sub = (*path, key)
        out.append(
            ProfileError(
                file,
                doc.line(sub),
                format_path(sub),
                f"unknown field {key!r}{hint}",
                ", ".join(known),
            )
        )
    return out


def _convert_one(error: jsonschema.ValidationError, doc: MarkedDocument, file: str) -> ProfileError:
    path: FieldPath = tuple(error.absolute_path)
    where = format_path(path)
    value = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    kind = error.validator
    if "propertyNames" in error.schema_path:
        sub = (*path, str(value))
        return ProfileError(
            file,
            doc.line(sub),
            format_path(sub),
            f"{value!r} is not a valid environment variable name",
            "letters, digits and '_', not starting with a digit",
        )
    if kind == "required":
        names = list(error.validator_value)
        missing = next((n for n in names if isinstance(value, Mapping) and n not in value), "")
        return ProfileError(
            file, doc.line(path), where, f"missing required field {missing!r}", ", ".join(names)
        )
    if kind == "type":
        expected = error.validator_value
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        actual = _type_name(value)
        article = "an" if actual[0] in "aeiou" else "a"
        message = f"{value!r} is {article} {actual}, expected {wanted}"
        if path and path[-1] in ("start", "end") and isinstance(value, int):
            message += '; quote times like "10:00" (YAML reads them as numbers)'
        return ProfileError(file, doc.line(path), where, message, wanted)
    if kind == "enum":
        return ProfileError(
            file, doc.line(path), where, f"{value!r} is not an accepted value", _accepted(schema)
        )
    if kind == "pattern":
        return ProfileError(
            file, doc.line(path), where, f"{value!r} has the wrong form", _accepted(schema)
        )
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        bound = f"{sign[str(kind)]} {error.validator_value}"
        return ProfileError(file, doc.line(path), where, f"{value!r} is out of range", bound)
    if kind in ("minLength", "maxLength", "minItems", "maxItems"):
        unit = "characters" if "Length" in str(kind) else "items"
        bound = f"{'at least' if str(kind).startswith('min') else 'at most'} "
        return ProfileError(
            file,
            doc.line(path),
            where,
            f"has {len(value)} {unit}",
            f"{bound}{error.validator_value} {unit}",
        )
    if kind == "uniqueItems":
        return ProfileError(file, doc.line(path), where, "lists an item twice", "unique items")
    return ProfileError(file, doc.line(path), where, error.message, _accepted(schema))


def schema_errors(doc: MarkedDocument, file: str) -> list[ProfileError]:
    """Every JSON Schema violation of ``doc``, in line order (forbidden keys excepted)."""
    validator = jsonschema.Draft202012Validator(load_schema())
    out: list[ProfileError] = []
    for error in validator.iter_errors(doc.data):
        for converted in _convert(error, doc, file):
            if converted.path.rsplit(".", 1)[-1] not in FORBIDDEN_KEYS:
                out.append(converted)
    return sorted(out, key=lambda e: (e.line or 0, e.path))
