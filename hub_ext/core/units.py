"""Byte sizes: parse and format, keeping decimal (GB) and binary (GiB) units distinct."""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_ACCEPTED = "accepted forms: 8GiB, 8 GiB, 8Gi, 10GB, 10 GB, 10G, 512MiB, 512Mi or plain bytes"


class SizeError(ValueError):
    """A size string could not be parsed."""


def parse_size(text: str) -> int:
    """Parse ``text`` such as ``"8GiB"`` or ``"10 GB"`` into bytes (GB = 10**9, GiB = 2**30)."""
    match = _PATTERN.match(text)
    if match is None:
        raise SizeError(f"cannot parse size {text!r}; {_ACCEPTED}")
    number, unit = str(match.group(1)), str(match.group(2))
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise SizeError(f"unknown size unit {unit!r} in {text!r}; {_ACCEPTED}")
    if "." in number:
        whole, frac = number.split(".")
        value = int(whole) * factor + int(frac) * factor // int("1" + "0" * len(frac))
    else:
        value = int(number) * factor
    return value


def format_size(num_bytes: int, binary: bool = True) -> str:
    """Format ``num_bytes`` with the largest unit that keeps at most two decimals readable."""
    base = 1024 if binary else 1000
    units = ["B", "KiB", "MiB", "GiB", "TiB"] if binary else ["B", "kB", "MB", "GB", "TB"]
    value = float(num_bytes)
    index = 0
    while abs(value) >= base and index < len(units) - 1:
        value /= base
        index += 1
    if index == 0:
        return f"{num_bytes} B"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} {units[index]}"
