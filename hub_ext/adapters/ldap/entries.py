"""Search results of ldap3 as plain values (without ldap3's abstract Entry layer).

ldap3 builds an ``ObjectDef``, a ``Reader`` and an ``Entry`` (and deep-copies every value) when a
caller reads ``Connection.entries``; the hub only needs each entry's DN and attribute values,
which the raw ``Connection.response`` already holds in the same form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub_ext.core.login.identity import normalise_dn


@dataclass(frozen=True)
class Entry:
    """One search result: its DN and attributes (values as lists, names as the server spells
    them; the same names as ldap3's ``Entry.entry_dn`` and ``entry_attributes_as_dict``)."""

    entry_dn: str
    entry_attributes_as_dict: Mapping[str, list[Any]]


def entries_of(response: Sequence[Mapping[str, Any]] | None) -> list[Entry]:
    """The entries of an ldap3 search response (references and other items skipped)."""
    out = []
    for item in response or ():
        if item.get("type") == "searchResEntry":
            attrs = {
                str(k): list(v) if isinstance(v, list | tuple) else [v]
                for k, v in (item.get("attributes") or {}).items()
            }
            out.append(Entry(str(item.get("dn") or ""), attrs))
    return out


def attr_values(entry: Entry, name: str) -> list[Any]:
    """The values of attribute ``name`` (matched without regard to case); [] if absent."""
    values = entry.entry_attributes_as_dict.get(name)
    if values is None:  # attribute names come back in the server's spelling
        for key, val in entry.entry_attributes_as_dict.items():
            if key.lower() == name.lower():
                return list(val)
        return []
    return list(values)


def is_under(dn: str, base: str) -> bool:
    """True when ``dn`` is ``base`` or lies below it (compared normalised)."""
    child, parent = normalise_dn(dn), normalise_dn(base)
    return child == parent or child.endswith("," + parent)
