"""Sphinx directive ``labhub-traits``: a reference list of a LabHub class's config traits.

Usage in MyST Markdown::

    ```{labhub-traits} hub_ext.hub.auth.ldap.LabLDAPAuthenticator
    :inherited: manage_groups refresh_pre_spawn
    ```

Lists every configurable trait defined by LabHub classes in the class's MRO (name, type,
default and the trait's help text), then the named inherited traits with their defaults only
(their documentation belongs to the project that defines them).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives


def _load(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _default_text(instance: Any, name: str, trait: Any) -> str:
    try:
        value = getattr(instance, name)
    except Exception:
        value = trait.default_value
    if hasattr(value, "name") and type(value).__module__ != "builtins":
        value = value.name  # enums
    if isinstance(value, set | frozenset):
        value = sorted(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _owner(cls: type, name: str) -> type:
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return cls


def _item(name: str, trait: Any, default: str, body: list[nodes.Node]) -> nodes.Node:
    term = nodes.term()
    term += nodes.literal(text=name)
    term += nodes.Text(f" ({type(trait).__name__}, default: ")
    term += nodes.literal(text=default)
    term += nodes.Text(")")
    definition = nodes.definition()
    for node in body:
        definition += node
    item = nodes.definition_list_item()
    item += term
    item += definition
    return item


class LabhubTraitsDirective(Directive):
    required_arguments = 1
    option_spec = {"inherited": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        cls = _load(self.arguments[0])
        instance = cls()
        traits = cls.class_traits(config=True)  # type: ignore[attr-defined]
        own = {n: t for n, t in traits.items() if _owner(cls, n).__module__.startswith("hub_ext.")}
        result = nodes.definition_list()
        for name in sorted(own):
            trait = own[name]
            help_text = inspect.cleandoc(trait.help or "")
            if not help_text:
                raise self.error(f"{cls.__name__}.{name} has no help text")
            paragraphs = [
                nodes.paragraph(text=" ".join(p.split())) for p in help_text.split("\n\n")
            ]
            result += _item(name, trait, _default_text(instance, name, trait), paragraphs)
        inherited = (self.options.get("inherited") or "").split()
        for name in inherited:
            if name not in traits:
                raise self.error(f"{cls.__name__} has no trait {name!r}")
            owner = _owner(cls, name)
            note = nodes.paragraph(
                text=f"Inherited from {owner.__module__}.{owner.__name__}; "
                "see that project's documentation for its full meaning."
            )
            result += _item(name, traits[name], _default_text(instance, name, traits[name]), [note])
        return [result]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("labhub-traits", LabhubTraitsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
