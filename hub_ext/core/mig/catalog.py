"""NVIDIA MIG catalog: GPU models, MIG profiles and their placements.

The data lives in ``hub_ext/core/mig/data/mig_catalog.yaml`` (sourced from NVIDIA's MIG user guide).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml


class UnknownProfileError(KeyError):
    """A MIG profile name is not offered by a GPU model."""

    def __init__(self, model: str, name: str, accepted: tuple[str, ...]) -> None:
        self.message = f"unknown MIG profile {name!r} for {model}; accepted: {', '.join(accepted)}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class UnknownGpuModelError(ValueError):
    """A GPU model or product name is not in the catalog."""


class CatalogError(ValueError):
    """The catalog data file is malformed."""


@dataclass(frozen=True)
class Placement:
    """A valid placement of a GPU instance: first memory slice and slice count."""

    start: int
    size: int


@dataclass(frozen=True)
class MigProfile:
    """One MIG GPU-instance profile of a GPU model."""

    name: str
    memory_slices: int
    compute_slices: int
    memory_mib: int
    sm_count: int
    max_instances: int
    placements: tuple[Placement, ...]

    @property
    def memory_bytes(self) -> int:
        """Instance memory in bytes, as the driver reports it."""
        return self.memory_mib * 2**20


@dataclass(frozen=True)
class GpuModel:
    """A MIG-capable GPU model with its profiles."""

    name: str
    products: tuple[str, ...]
    memory_mib: int
    memory_slices: int
    compute_slices: int
    sm_count: int
    profiles: tuple[MigProfile, ...]

    def profile(self, name: str) -> MigProfile:
        """Return the profile called ``name`` (case-insensitive)."""
        wanted = name.strip().lower()
        for prof in self.profiles:
            if prof.name.lower() == wanted:
                return prof
        raise UnknownProfileError(self.name, name, tuple(p.name for p in self.profiles))

    @property
    def memory_bytes(self) -> int:
        """Whole-GPU memory in bytes."""
        return self.memory_mib * 2**20


@dataclass(frozen=True)
class Catalog:
    """All known GPU models."""

    models: tuple[GpuModel, ...]

    def model(self, name_or_product: str) -> GpuModel:
        """Look up a model by canonical name, alias or GFD ``nvidia.com/gpu.product`` value."""
        wanted = name_or_product.strip().lower()
        for gpu in self.models:
            if gpu.name.lower() == wanted or wanted in (p.lower() for p in gpu.products):
                return gpu
        raise UnknownGpuModelError(
            f"unknown GPU model {name_or_product!r}; accepted: {', '.join(self.accepted_names())}"
        )

    def accepted_names(self) -> tuple[str, ...]:
        """Canonical names followed by all aliases and product names."""
        names = [m.name for m in self.models]
        for m in self.models:
            names.extend(p for p in m.products if p not in names)
        return tuple(names)


def _int(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CatalogError(f"{where}: field {key!r} must be a non-negative integer")
    return value


def _profile(raw: dict[str, Any], where: str) -> MigProfile:
    name = raw.get("name")
    if not isinstance(name, str):
        raise CatalogError(f"{where}: profile needs a string 'name'")
    where = f"{where} profile {name}"
    size = _int(raw, "size", where)
    starts = raw.get("starts")
    if not isinstance(starts, list) or not all(isinstance(s, int) for s in starts):
        raise CatalogError(f"{where}: 'starts' must be a list of integers")
    return MigProfile(
        name=name,
        memory_slices=_int(raw, "memory_slices", where),
        compute_slices=_int(raw, "compute_slices", where),
        memory_mib=_int(raw, "memory_mib", where),
        sm_count=_int(raw, "sm_count", where),
        max_instances=_int(raw, "max_instances", where),
        placements=tuple(Placement(start=s, size=size) for s in starts),
    )


def parse_catalog(data: Any) -> Catalog:
    """Build a :class:`Catalog` from the parsed YAML document."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError("catalog: top-level 'models' list missing")
    models = []
    for raw in data["models"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise CatalogError("catalog: every model needs a string 'name'")
        where = f"model {raw['name']}"
        profiles = raw.get("profiles")
        if not isinstance(profiles, list):
            raise CatalogError(f"{where}: 'profiles' must be a list")
        products = raw.get("products", [])
        models.append(
            GpuModel(
                name=raw["name"],
                products=tuple(str(p) for p in products),
                memory_mib=_int(raw, "memory_mib", where),
                memory_slices=_int(raw, "memory_slices", where),
                compute_slices=_int(raw, "compute_slices", where),
                sm_count=_int(raw, "sm_count", where),
                profiles=tuple(_profile(p, where) for p in profiles),
            )
        )
    return Catalog(models=tuple(models))


@functools.cache
def load_catalog() -> Catalog:
    """Load the MIG catalog shipped with LabHub (cached)."""
    text = resources.files("hub_ext.core.mig").joinpath("data/mig_catalog.yaml").read_text("utf-8")
    return parse_catalog(yaml.safe_load(text))
