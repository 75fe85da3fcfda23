"""Label and field selectors, parsed once per request and applied to JSON objects.

Label selectors accept ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``
and ``!k``. Field selectors accept ``path=v``, ``path==v`` and ``path!=v`` where ``path`` is a
dotted JSON path such as ``metadata.name``, ``spec.nodeName``, ``status.phase`` or
``involvedObject.kind``; a missing field compares as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Test = Callable[[Obj], bool]


class SelectorError(ValueError):
    """A selector string that cannot be parsed."""


_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./:-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in (s.strip() for s in terms) if t]


def _label_term(term: str) -> Test:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET_RE.match(term)
    if not match:
        raise SelectorError(f"unable to parse label selector term {term!r}")
    negate, key, op, values = match.groups()
    if op:
        if negate:
            raise SelectorError(f"unable to parse label selector term {term!r}")
        options = frozenset(v.strip() for v in values.split(",") if v.strip())
        if op == "in":
            return lambda labels: labels.get(key) in options
        return lambda labels: labels.get(key) not in options
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def parse_label_selector(text: str | None) -> Test | None:
    """A test on an object's labels, or None for 'everything'."""
    if not text or not text.strip():
        return None
    tests = [_label_term(t) for t in _split_terms(text)]

    def check(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return check


def field_value(obj: Obj, path: str) -> str:
    """The string value at a dotted path (``""`` when missing), as field selectors see it."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldTerm:
    path: str
    value: str
    negate: bool

    def __call__(self, obj: Obj) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negate


def parse_field_selector(text: str | None) -> list[FieldTerm]:
    if not text or not text.strip():
        return []
    terms: list[FieldTerm] = []
    for term in _split_terms(text):
        match = _EQ_RE.match(term)
        if not match:
            raise SelectorError(f"unable to parse field selector term {term!r}")
        path, op, value = match.groups()
        terms.append(FieldTerm(path, value, op == "!="))
    return terms


@dataclass(frozen=True)
class Selector:
    """Namespace, label and field conditions of one list or watch request."""

    namespace: str | None = None
    labels: Test | None = None
    fields: tuple[FieldTerm, ...] = ()

    @classmethod
    def parse(cls, namespace: str | None, label: str | None, field: str | None) -> Selector:
        return cls(namespace, parse_label_selector(label), tuple(parse_field_selector(field)))

    @property
    def exact_name(self) -> str | None:
        for term in self.fields:
            if term.path == "metadata.name" and not term.negate:
                return term.value
        return None

    def __call__(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels(obj):
            return False
        return all(term(obj) for term in self.fields)
