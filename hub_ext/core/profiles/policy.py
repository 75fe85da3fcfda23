"""The global ops policy (``profiles/policy.yaml``) that every course profile must respect."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from hub_ext.core.units import SizeError, parse_size

POLICY_KEYS = (
    "allowed_registries",
    "max_cpu",
    "max_memory",
    "max_home_size",
    "allowed_slice_types",
    "allowed_volumes",
    "allowed_storage_classes",
)
ADMISSION_KEYS = ("quotas",)
"""Keys read by the admission rules, not by this module; the caller passes the current list
(:func:`hub_ext.core.admission.rules.policy_keys`), since profiles know nothing of admission."""


@dataclass(frozen=True)
class Policy:
    """Global ops policy enforced on every profile (an empty tuple allows everything)."""

    allowed_registries: tuple[str, ...] = ()
    max_cpu: float = 16.0
    allowed_slice_types: tuple[str, ...] = ()
    max_memory_bytes: int | None = None
    max_home_bytes: int | None = None
    allowed_volumes: tuple[str, ...] = ()
    allowed_storage_classes: tuple[str, ...] = ()


def _names(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"policy: {key} must be a list of names")
    return tuple(value)


def _size(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return parse_size(str(value))
    except SizeError as exc:
        raise ValueError(f"policy: {key}: {exc}") from None


def parse_policy(text: str, admission_keys: Iterable[str] = ADMISSION_KEYS) -> Policy:
    """Parse policy.yaml (safe loader); raises ValueError naming the key and accepted values.

    The ``admission_keys`` sections (quotas, budgets ...) are accepted and left to the
    admission rules' parser."""
    accepted = (*POLICY_KEYS, *admission_keys)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"policy: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("policy must be a mapping of " + ", ".join(accepted))
    unknown = sorted(str(k) for k in data if k not in accepted)
    if unknown:
        raise ValueError(f"policy: unknown key {unknown[0]!r}; accepted: {', '.join(accepted)}")
    max_cpu = data.get("max_cpu", 16)
    if isinstance(max_cpu, bool) or not isinstance(max_cpu, (int, float)) or max_cpu <= 0:
        raise ValueError("policy: max_cpu must be a positive number of cores")
    return Policy(
        allowed_registries=_names(data, "allowed_registries"),
        max_cpu=float(max_cpu),
        allowed_slice_types=_names(data, "allowed_slice_types"),
        max_memory_bytes=_size(data, "max_memory"),
        max_home_bytes=_size(data, "max_home_size"),
        allowed_volumes=_names(data, "allowed_volumes"),
        allowed_storage_classes=_names(data, "allowed_storage_classes"),
    )
