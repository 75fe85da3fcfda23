"""Kubernetes resource quantities ("500m", "4", "16Gi", "10G") as exact numbers.

CPU is counted in millicores and everything else in base units (bytes, devices), so that the
scheduler's sums are exact integers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")

ACCEPTED_FORMS = (
    'a number with an optional suffix m, k, M, G, T, Ki, Mi, Gi, Ti (e.g. "500m", "4", "16Gi")'
)


class QuantityError(ValueError):
    """A resource quantity that Kubernetes would not accept."""


def parse_quantity(value: object) -> Decimal:
    """Return the quantity as a Decimal in base units ("500m" -> 0.5, "1Gi" -> 1073741824)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity; use {ACCEPTED_FORMS}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value)
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{text!r} is not a quantity; use {ACCEPTED_FORMS}")
    number, suffix = match.groups()
    if suffix.endswith("iB"):  # tolerate "16GiB" in cluster files
        suffix = suffix[:-1]
    if suffix not in _SUFFIXES:
        raise QuantityError(f"{text!r} has an unknown suffix {suffix!r}; use {ACCEPTED_FORMS}")
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as exc:  # pragma: no cover - the regex already checked the number
        raise QuantityError(f"{text!r} is not a quantity; use {ACCEPTED_FORMS}") from exc


def to_units(resource: str, value: object) -> int:
    """Integer amount of a resource: millicores for cpu, base units (rounded up) for others."""
    quantity = parse_quantity(value)
    if resource == "cpu":
        quantity *= 1000
    return int(quantity.to_integral_value(rounding="ROUND_CEILING"))


def format_units(resource: str, units: int) -> str:
    """The inverse of :func:`to_units` in the form Kubernetes prints ("500m", "16Gi", "4")."""
    if resource == "cpu":
        return f"{units // 1000}" if units % 1000 == 0 else f"{units}m"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        for suffix in ("Ti", "Gi", "Mi", "Ki"):
            size = int(_SUFFIXES[suffix])
            if units and units % size == 0:
                return f"{units // size}{suffix}"
    return str(units)
