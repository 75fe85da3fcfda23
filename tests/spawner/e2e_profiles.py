"""Course profiles served to the hub in the end-to-end tests (attribute names as CourseProfile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gpu:
    slice_types: tuple[str, ...]


@dataclass(frozen=True)
class Resources:
    cpu_guarantee: float = 0.05
    cpu_limit: float = 1.0
    memory_guarantee: int = 64 * 2**20
    memory_limit: int = 2**30


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    description: str
    groups: tuple[str, ...]
    gpu: Gpu | None
    image: str = "registry.example.org/labhub/singleuser-ml:2026.1"
    resources: Resources = field(default_factory=Resources)
    sessions: tuple[Any, ...] = ()


PROFILES = (
    Profile(
        "ml-101",
        "Machine Learning 101",
        "PyTorch, one MIG slice",
        ("ml101-a", "ml101-b"),
        Gpu(("1g.10gb",)),
    ),
    Profile(
        "cv-201", "Computer Vision 201", "Needs a 2g.10gb slice", ("cv201",), Gpu(("2g.10gb",))
    ),
    Profile("intro-python", "Intro to Python", "CPU only", ("intro",), None),
)


def provider() -> tuple[Profile, ...]:
    return PROFILES
