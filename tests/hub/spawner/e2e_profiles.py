"""Course profiles served to the hub in the end-to-end tests (attribute names as CourseProfile)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
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


@dataclass(frozen=True)
class FixedSession:
    """A lab session with one occurrence (the agreed LabSession interface, fixed in time)."""

    group: str
    seats: int
    start: datetime
    end: datetime

    def occurrences_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        return [(self.start, self.end)] if self.start < end and self.end > start else []


def lab_provider(session_start: str, group: str, seats: int) -> Any:
    """Profiles where ml-101 has a lab session of ``group`` starting at ``session_start``."""
    start = datetime.fromisoformat(session_start)
    session = FixedSession(group, seats, start, start + timedelta(hours=2))
    profiles = tuple(replace(p, sessions=(session,)) if p.slug == "ml-101" else p for p in PROFILES)
    return lambda: profiles
