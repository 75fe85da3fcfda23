"""Course profiles: typed, frozen profile model, safe parsing, validation and spawn plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from hub_ext.core.k8s_names import LABEL_COURSE
from hub_ext.core.profiles.policy import Policy, parse_policy
from hub_ext.core.profiles.validation import MAX_PROFILE_BYTES, ProfileError

__all__ = [
    "MAX_PROFILE_BYTES",
    "CourseProfile",
    "ExtraApp",
    "GpuRequest",
    "ImageRef",
    "LabSession",
    "Limits",
    "Policy",
    "ProfileError",
    "Resources",
    "SharedVolume",
    "SpawnPlan",
    "Storage",
    "parse_policy",
    "to_spawn_plan",
]

GIB = 2**30
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ExtraApp(Enum):
    CODE_SERVER = "code-server"
    DESKTOP = "desktop"


@dataclass(frozen=True)
class Resources:
    cpu_guarantee: float = 4.0
    cpu_limit: float = 4.0
    memory_guarantee_bytes: int = 16 * GIB
    memory_limit_bytes: int = 16 * GIB


@dataclass(frozen=True)
class GpuRequest:
    """The GPU slice a profile (and so its server) asks for: acceptable slice types, most preferred
    first, a minimum GPU memory and whether a shared (time-sliced or MPS) slice will do."""

    slice_types: tuple[str, ...] = ()
    min_gpu_memory_bytes: int | None = None
    allow_sharing: bool = False

    @property
    def slice_type(self) -> str:
        """The preferred slice type (``""`` when none is named)."""
        return self.slice_types[0] if self.slice_types else ""

    @property
    def fallbacks(self) -> tuple[str, ...]:
        """The other acceptable slice types, in order."""
        return self.slice_types[1:]


@dataclass(frozen=True)
class SharedVolume:
    """A course share: the PVC ``name`` (datasets, course material), mounted at ``mount_path``."""

    name: str
    mount_path: str
    read_only: bool = True


@dataclass(frozen=True)
class Storage:
    home_bytes: int = 250 * GIB
    shares: tuple[SharedVolume, ...] = ()
    lecturer_share: SharedVolume | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class Limits:
    max_runtime_seconds: int = 8 * 3600
    idle_timeout_seconds: int = 3600


@dataclass(frozen=True)
class LabSession:
    weekday: int  # 0 = Monday
    start: time
    end: time
    timezone: str
    group: str
    seats: int

    def occurrences_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Weekly windows overlapping [start, end), as aware UTC datetimes (DST-correct)."""
        zone = ZoneInfo(self.timezone)
        day: date = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        out: list[tuple[datetime, datetime]] = []
        while day <= last:
            if day.weekday() == self.weekday:
                s = datetime.combine(day, self.start, zone).astimezone(UTC)
                e = datetime.combine(day, self.end, zone).astimezone(UTC)
                if s < end and e > start:
                    out.append((s, e))
            day += timedelta(days=1)
        return out


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str | None = None

    @property
    def reference(self) -> str:
        base = f"{self.repository}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base


@dataclass(frozen=True)
class CourseProfile:
    slug: str
    display_name: str
    description: str
    lecturers: tuple[str, ...]
    groups: tuple[str, ...]
    image: ImageRef
    default_url: str
    resources: Resources
    gpu: GpuRequest | None
    storage: Storage
    sessions: tuple[LabSession, ...]
    limits: Limits
    env: tuple[tuple[str, str], ...]
    extra_apps: tuple[ExtraApp, ...]
    kubespawner_override: tuple[tuple[str, str], ...] = ()
    """KubeSpawner setting name and its value as JSON text, sorted by name."""


@dataclass(frozen=True)
class SpawnPlan:
    """Strategy-agnostic spawner settings derived from one profile."""

    image: str
    default_url: str
    cpu_guarantee: float
    cpu_limit: float
    memory_guarantee_bytes: int
    memory_limit_bytes: int
    gpu: GpuRequest | None
    home_bytes: int
    volumes: tuple[SharedVolume, ...]
    env: tuple[tuple[str, str], ...]
    extra_apps: tuple[ExtraApp, ...]
    labels: tuple[tuple[str, str], ...]
    max_runtime_seconds: int
    idle_timeout_seconds: int


def to_spawn_plan(profile: CourseProfile) -> SpawnPlan:
    vols = profile.storage.shares + (
        (profile.storage.lecturer_share,) if profile.storage.lecturer_share else ()
    )
    r = profile.resources
    return SpawnPlan(
        image=profile.image.reference,
        default_url=profile.default_url,
        cpu_guarantee=r.cpu_guarantee,
        cpu_limit=r.cpu_limit,
        memory_guarantee_bytes=r.memory_guarantee_bytes,
        memory_limit_bytes=r.memory_limit_bytes,
        gpu=profile.gpu,
        home_bytes=profile.storage.home_bytes,
        volumes=vols,
        env=profile.env,
        extra_apps=profile.extra_apps,
        labels=((LABEL_COURSE, profile.slug),),
        max_runtime_seconds=profile.limits.max_runtime_seconds,
        idle_timeout_seconds=profile.limits.idle_timeout_seconds,
    )
