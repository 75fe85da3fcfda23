"""docutils building blocks shared by the reference-page extensions (not an extension itself)."""

from __future__ import annotations

import re

from docutils import nodes

_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> list[nodes.Node]:
    """Description text with `code` spans as literals."""
    parts: list[nodes.Node] = []
    last = 0
    for match in _CODE.finditer(text):
        if match.start() > last:
            parts.append(nodes.Text(text[last : match.start()]))
        parts.append(nodes.literal(match.group(1), match.group(1)))
        last = match.end()
    if last < len(text):
        parts.append(nodes.Text(text[last:]))
    return parts


def entry(*children: nodes.Node) -> nodes.entry:
    """A table cell holding one paragraph of ``children``."""
    cell = nodes.entry()
    cell += nodes.paragraph("", "", *children)
    return cell
