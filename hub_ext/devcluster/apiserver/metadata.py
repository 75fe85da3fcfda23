"""Validation of label and annotation keys and values, and of resource quantities.

Kubernetes refuses such objects with ``422 Invalid``; so does the emulator, so that code which
would fail on a real cluster fails here too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from hub_ext.devcluster.apiserver.errors import Cause

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$"
)
_SCALE = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}  # fmt: skip
STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage"})
MAX_ANNOTATION_BYTES = 256 * 1024


def key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (at most 63 characters)"
        )
    return None


def metadata_causes(meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [Cause("metadata.labels", "must be a map of strings")]
    for key, value in labels.items():
        problem = key_problem(str(key))
        if problem:
            causes.append(Cause("metadata.labels", f'Invalid value: "{key}": {problem}'))
        text = value if isinstance(value, str) else None
        if text is None or (text and (len(text) > 63 or not _NAME.match(text))):
            causes.append(
                Cause(
                    f"metadata.labels[{key}]",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character (at most 63 characters)",
                )
            )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        return [*causes, Cause("metadata.annotations", "must be a map of strings")]
    size = 0
    for key, value in annotations.items():
        problem = key_problem(str(key))
        if problem:
            causes.append(Cause("metadata.annotations", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str):
            causes.append(Cause(f"metadata.annotations[{key}]", "must be a string"))
            continue
        size += len(str(key)) + len(value.encode())
    if size > MAX_ANNOTATION_BYTES:
        causes.append(Cause("metadata.annotations", "Too long: must have at most 262144 bytes"))
    return causes


def quantity(value: Any) -> Decimal | None:
    """The quantity in base units, or None when Kubernetes would not accept it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    number, exponent, suffix = match.groups()
    amount = Decimal(number)
    if exponent:
        return amount * Decimal(10) ** int(exponent[1:])
    return amount * _SCALE[suffix]


def _overcommitable(resource: str) -> bool:
    if resource in STANDARD_RESOURCES or resource.startswith("hugepages-"):
        return True
    return "/" not in resource or resource.startswith("kubernetes.io/")


def resource_causes(where: str, resources: Any) -> list[Cause]:
    """Quantities must parse and be non-negative; requests may not exceed limits."""
    if not isinstance(resources, dict):
        return []
    causes: list[Cause] = []
    parsed: dict[str, dict[str, Decimal]] = {}
    for part in ("requests", "limits"):
        values = resources.get(part) or {}
        parsed[part] = {}
        for name, value in values.items():
            amount = quantity(value)
            if amount is None or amount < 0:
                causes.append(
                    Cause(
                        f"{where}.{part}[{name}]",
                        f'Invalid value: "{value}": must be a non-negative quantity such as '
                        '"500m", "2", "16Gi"',
                    )
                )
            else:
                parsed[part][name] = amount
    requests, limits = parsed["requests"], parsed["limits"]
    for name, amount in requests.items():
        limit = limits.get(name)
        if _overcommitable(name):
            if limit is not None and amount > limit:
                causes.append(
                    Cause(
                        f"{where}.requests",
                        f'Invalid value: "{resources["requests"][name]}": must be less than or '
                        f"equal to {name} limit of {resources['limits'][name]}",
                    )
                )
        elif limit is None:
            causes.append(
                Cause(
                    f"{where}.limits",
                    f"Required value: Limit must be set for non overcommitable resources ({name})",
                    "FieldValueRequired",
                )
            )
        elif amount != limit:
            causes.append(
                Cause(
                    f"{where}.requests[{name}]",
                    f'Invalid value: "{resources["requests"][name]}": must be equal to {name} '
                    "limit",
                )
            )
    return causes
