"""Course profiles: typed, frozen profile model, safe parsing, validation and spawn plans."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from hub_ext.core.mig import load_catalog

MAX_PROFILE_BYTES = 256 * 1024
GIB = 2**30
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9.-]+(?::\d+)?/[a-z0-9._/-]+):(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SECRET = re.compile(r"(PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
_FORBIDDEN = ("privileged", "hostPath", "hostNetwork", "runAsUser", "securityContext")
_TOP_KEYS = frozenset(
    {
        "slug",
        "display_name",
        "description",
        "lecturers",
        "groups",
        "image",
        "default_url",
        "resources",
        "gpu",
        "storage",
        "sessions",
        "limits",
        "env",
        "extra_apps",
    }
)


class ExtraApp(Enum):
    CODE_SERVER = "code-server"
    DESKTOP = "desktop"


@dataclass(frozen=True)
class ProfileError:
    """One validation problem: where it is, what is wrong and what is allowed."""

    file: str
    line: int | None
    path: str
    message: str
    allowed: str = ""

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        hint = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{loc}: {self.path or '<root>'}: {self.message}{hint}"


@dataclass(frozen=True)
class Policy:
    """Global ops policy enforced on every profile."""

    allowed_registries: tuple[str, ...] = ()
    max_cpu: float = 16.0
    allowed_slice_types: tuple[str, ...] = ()


def parse_policy(text: str) -> Policy:
    """Parse policy.yaml (safe loader); raises ValueError naming the problem."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(
            "policy must be a mapping of allowed_registries, max_cpu, allowed_slice_types"
        )
    return Policy(
        tuple(str(x) for x in data.get("allowed_registries") or ()),
        float(data.get("max_cpu", 16)),
        tuple(str(x) for x in data.get("allowed_slice_types") or ()),
    )


@dataclass(frozen=True)
class Resources:
    cpu_guarantee: float = 4.0
    cpu_limit: float = 4.0
    memory_guarantee_bytes: int = 16 * GIB
    memory_limit_bytes: int = 16 * GIB


@dataclass(frozen=True)
class GpuRequest:
    slice_types: tuple[str, ...] = ()
    min_gpu_memory_bytes: int | None = None
    allow_sharing: bool = False


@dataclass(frozen=True)
class SharedVolume:
    name: str
    mount_path: str
    read_only: bool = True


@dataclass(frozen=True)
class Storage:
    home_bytes: int = 250 * GIB
    shares: tuple[SharedVolume, ...] = ()
    lecturer_share: SharedVolume | None = None


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
        labels=(("labhub.io/course", profile.slug),),
        max_runtime_seconds=profile.limits.max_runtime_seconds,
        idle_timeout_seconds=profile.limits.idle_timeout_seconds,
    )


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader refusing anchors and aliases (no expansion bombs)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError("", None, "anchors and aliases are not allowed", mark)
        return super().compose_node(parent, index)


def parse_profile(
    text: str, file: str, policy: Policy | None = None
) -> tuple[CourseProfile | None, list[ProfileError]]:
    """Parse and validate profile text. Never raises; returns (profile or None, errors)."""
    try:
        return _parse(text, file, policy or Policy())
    except Exception as exc:
        return None, [ProfileError(file, None, "", f"could not read profile: {exc}")]


def _parse(text: str, file: str, policy: Policy) -> tuple[CourseProfile | None, list[ProfileError]]:
    if len(text.encode("utf-8", "replace")) > MAX_PROFILE_BYTES:
        return None, [
            ProfileError(file, None, "", "file too large", f"<= {MAX_PROFILE_BYTES} bytes")
        ]
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [ProfileError(file, line, "", f"invalid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(node, yaml.MappingNode):
        return None, [ProfileError(file, 1, "", "profile must be a mapping", "slug, image, ...")]
    errs: list[ProfileError] = []
    lines: dict[str, int] = {}
    for k, v in node.value:
        lines[str(k.value)] = v.start_mark.line + 1
    data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - safe loader subclass
    assert isinstance(data, dict)

    def err(path: str, msg: str, allowed: str = "") -> None:
        top = path.split(".")[0].split("[")[0]
        errs.append(ProfileError(file, lines.get(top), path, msg, allowed))

    for key in data:
        if str(key) in _FORBIDDEN:
            err(str(key), "security: privileged or host access settings are refused", "none")
        elif str(key) not in _TOP_KEYS:
            err(str(key), "unknown field", ", ".join(sorted(_TOP_KEYS)))
    slug = data.get("slug")
    if not isinstance(slug, str) or not _SLUG.match(slug):
        err("slug", "must be a lowercase slug", "[a-z0-9-], 2-63 characters")
    img = data.get("image")
    m = _IMAGE.match(img) if isinstance(img, str) else None
    if m is None:
        err("image", "image must be registry/repository:tag[@sha256:...]", "pinnable reference")
    elif m["tag"] == "latest":
        err("image", "tag 'latest' is not reproducible", "a fixed version tag")
    if m is not None and policy.allowed_registries:
        registry = m["repo"].split("/")[0]
        if registry not in policy.allowed_registries:
            err(
                "image",
                f"registry {registry!r} is not allowed",
                ", ".join(policy.allowed_registries),
            )
    res_data = data.get("resources") or {}
    for key in ("cpu_guarantee", "cpu_limit"):
        value = res_data.get(key, 4) if isinstance(res_data, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            err(
                f"resources.{key}",
                "must be a positive number of cores",
                f"0 < cores <= {policy.max_cpu:g}",
            )
        elif value > policy.max_cpu:
            err(
                f"resources.{key}",
                f"{value} cores is above the policy maximum",
                f"<= {policy.max_cpu:g}",
            )
    env: list[tuple[str, str]] = []
    for k, v in (data.get("env") or {}).items():
        if _SECRET.search(str(k)):
            err(
                f"env.{k}",
                "looks like a secret; secrets must not be in profiles",
                "non-secret vars",
            )
        env.append((str(k), str(v)))
    sessions: list[LabSession] = []
    for i, s in enumerate(data.get("sessions") or []):
        try:
            ZoneInfo(str(s["timezone"]))
            day = WEEKDAYS.index(str(s["weekday"]).lower()[:3])
            sess = LabSession(
                day,
                time.fromisoformat(str(s["start"])),
                time.fromisoformat(str(s["end"])),
                str(s["timezone"]),
                str(s["group"]),
                int(s["seats"]),
            )
        except (ZoneInfoNotFoundError, ValueError, KeyError, TypeError) as exc:
            err(f"sessions[{i}]", f"invalid session: {exc}", "weekday, start, end, IANA timezone")
            continue
        if sess.end <= sess.start:
            err(f"sessions[{i}].end", "end must be after start")
        for j, o in enumerate(sessions):
            if o.weekday == sess.weekday and o.start < sess.end and sess.start < o.end:
                err(f"sessions[{i}]", f"overlaps sessions[{j}]")
        sessions.append(sess)
    gpu_data = data.get("gpu")
    gpu = None
    if isinstance(gpu_data, dict):
        known = {p.name for model in load_catalog().models for p in model.profiles}
        for i, st in enumerate(gpu_data.get("slice_types") or ()):
            if str(st) not in known:
                err(f"gpu.slice_types[{i}]", f"unknown slice type {st!r}", ", ".join(sorted(known)))
            elif policy.allowed_slice_types and str(st) not in policy.allowed_slice_types:
                err(
                    f"gpu.slice_types[{i}]",
                    f"slice type {st!r} is not allowed by policy",
                    ", ".join(policy.allowed_slice_types),
                )
        gpu = GpuRequest(
            tuple(str(x) for x in gpu_data.get("slice_types") or ()),
            None,
            bool(gpu_data.get("allow_sharing", False)),
        )
    if errs or m is None or not isinstance(slug, str):
        return None, errs
    res = data.get("resources") or {}
    return CourseProfile(
        slug=slug,
        display_name=str(data.get("display_name", slug)),
        description=str(data.get("description", "")),
        lecturers=tuple(str(x) for x in data.get("lecturers") or ()),
        groups=tuple(str(x) for x in data.get("groups") or ()),
        image=ImageRef(m["repo"], m["tag"], m["digest"]),
        default_url=str(data.get("default_url", "/lab")),
        resources=Resources(float(res.get("cpu_guarantee", 4)), float(res.get("cpu_limit", 4))),
        gpu=gpu,
        storage=Storage(),
        sessions=tuple(sessions),
        limits=Limits(),
        env=tuple(env),
        extra_apps=tuple(ExtraApp(x) for x in data.get("extra_apps") or ()),
    ), []
