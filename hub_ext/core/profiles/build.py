"""From schema-valid profile YAML to a typed :class:`CourseProfile`, with the semantic checks.

The JSON Schema (``profile.schema.yaml``) checks shapes, types and field names first; this
module then parses sizes and durations, checks sessions, secrets and GPU slice types, and
enforces the ops :class:`~hub_ext.core.profiles.policy.Policy`. Every problem becomes a
:class:`ProfileError` with the line of the offending node.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub_ext.core.mig.catalog import load_catalog
from hub_ext.core.profiles.model import (
    GIB,
    WEEKDAYS,
    CourseProfile,
    ExtraApp,
    GpuRequest,
    ImageRef,
    LabSession,
    Limits,
    Resources,
    SharedVolume,
    Storage,
)
from hub_ext.core.profiles.overrides import override_problems
from hub_ext.core.profiles.policy import Policy
from hub_ext.core.profiles.validation import (
    FieldPath,
    MarkedDocument,
    ProfileError,
    ProfileYamlError,
    forbidden_errors,
    format_path,
    load_marked,
    schema_errors,
)
from hub_ext.core.units import SizeError, format_size, parse_size

_IMAGE = re.compile(r"^(?P<repo>[^:@]+(?::\d+)?/[^:@]+):(?P<tag>[^@]+)$")
_SECRET = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_FORMS = "90m, 8h, 1d, 3600s or plain seconds"
SIZE_FORMS = "16GiB, 16Gi, 10GB, 512MiB or plain bytes"


def _size(num_bytes: int) -> str:
    """``35000000000`` -> ``35 GB (32.6 GiB)``: both units, since GB and GiB differ."""
    return f"{format_size(num_bytes, binary=False)} ({format_size(num_bytes)})"


class _Checker:
    """Collects errors with line numbers while the profile is built."""

    def __init__(self, doc: MarkedDocument, file: str, policy: Policy) -> None:
        self.doc = doc
        self.file = file
        self.policy = policy
        self.errors: list[ProfileError] = []

    def err(self, path: FieldPath, message: str, allowed: str = "") -> None:
        self.errors.append(
            ProfileError(self.file, self.doc.line(path), format_path(path), message, allowed)
        )

    def size(self, value: Any, path: FieldPath, default: int) -> int:
        if value is None:
            return default
        try:
            size = parse_size(str(value))
        except SizeError:
            self.err(path, f"{value!r} is not a size", SIZE_FORMS)
            return default
        if size <= 0:
            self.err(path, "must be larger than 0", SIZE_FORMS)
        return size

    def duration(self, value: Any, path: FieldPath, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, int) and value > 0:
            return value
        match = _DURATION.match(str(value))
        if match is None or int(match[1]) == 0:
            self.err(path, f"{value!r} is not a positive duration", DURATION_FORMS)
            return default
        return int(match[1]) * _DURATION_UNITS[match[2]]


def build_profile(
    text: str, file: str, policy: Policy
) -> tuple[CourseProfile | None, list[ProfileError]]:
    """Parse, validate and build one profile; returns (profile or None, errors)."""
    try:
        doc = load_marked(text)
    except ProfileYamlError as exc:
        return None, [ProfileError(file, exc.line, "", str(exc), exc.allowed)]
    if not isinstance(doc.data, dict):
        return None, [
            ProfileError(
                file,
                doc.line(()),
                "",
                "profile must be a mapping",
                "slug, display_name, image, ...",
            )
        ]
    errors = forbidden_errors(doc, file) + schema_errors(doc, file)
    if errors:
        return None, errors
    check = _Checker(doc, file, policy)
    profile = _build(check, doc.data)
    if check.errors:
        return None, check.errors
    return profile, []


def _build(check: _Checker, data: Mapping[str, Any]) -> CourseProfile:
    groups = tuple(data.get("groups") or ())
    return CourseProfile(
        slug=str(data["slug"]),
        display_name=str(data["display_name"]),
        description=str(data.get("description", "")),
        lecturers=tuple(data.get("lecturers") or ()),
        groups=groups,
        image=_image(check, str(data["image"])),
        default_url=str(data.get("default_url", "/lab")),
        resources=_resources(check, data.get("resources") or {}),
        gpu=_gpu(check, data.get("gpu")),
        storage=_storage(check, data.get("storage") or {}),
        sessions=_sessions(check, data.get("sessions") or [], groups),
        limits=_limits(check, data.get("limits") or {}),
        env=_env(check, data.get("env") or {}),
        extra_apps=tuple(ExtraApp(x) for x in data.get("extra_apps") or ()),
        kubespawner_override=_overrides(check, data.get("kubespawner_override") or {}),
    )


def _overrides(check: _Checker, data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    for name, problem, accepted in override_problems(data):
        check.err(("kubespawner_override", name), problem, accepted)
    return tuple((str(k), json.dumps(v, sort_keys=True)) for k, v in sorted(data.items()))


def _image(check: _Checker, ref: str) -> ImageRef:
    match = _IMAGE.match(ref)
    assert match is not None  # the schema pattern guarantees the form
    if match["tag"] == "latest":
        check.err(("image",), "tag 'latest' is not reproducible", "a fixed version tag")
    registry = match["repo"].split("/")[0]
    allowed = check.policy.allowed_registries
    if allowed and registry not in allowed:
        check.err(("image",), f"registry {registry!r} is not allowed", ", ".join(allowed))
    return ImageRef(match["repo"], match["tag"])


def _resources(check: _Checker, data: Mapping[str, Any]) -> Resources:
    policy = check.policy
    cpu_g = float(data.get("cpu_guarantee", 4))
    cpu_l = float(data.get("cpu_limit", max(cpu_g, 4.0)))
    for key, cpu in (("cpu_guarantee", cpu_g), ("cpu_limit", cpu_l)):
        if cpu > policy.max_cpu:
            check.err(
                ("resources", key),
                f"{cpu:g} cores is above the policy maximum",
                f"<= {policy.max_cpu:g}",
            )
    if cpu_g > cpu_l:
        check.err(
            ("resources", "cpu_guarantee"),
            f"{cpu_g:g} cores is above cpu_limit ({cpu_l:g})",
            f"<= {cpu_l:g}",
        )
    mem_g = check.size(data.get("memory_guarantee"), ("resources", "memory_guarantee"), 16 * GIB)
    mem_l = check.size(
        data.get("memory_limit"), ("resources", "memory_limit"), max(mem_g, 16 * GIB)
    )
    cap = policy.max_memory_bytes
    for key, mem in (("memory_guarantee", mem_g), ("memory_limit", mem_l)):
        if cap is not None and mem > cap:
            check.err(
                ("resources", key),
                f"{_size(mem)} is above the policy maximum",
                f"<= {_size(cap)}",
            )
    if mem_g > mem_l:
        check.err(
            ("resources", "memory_guarantee"),
            f"{_size(mem_g)} is above memory_limit ({_size(mem_l)})",
            f"<= {_size(mem_l)}",
        )
    return Resources(cpu_g, cpu_l, mem_g, mem_l)


def _gpu(check: _Checker, data: Mapping[str, Any] | None) -> GpuRequest | None:
    if data is None:
        return None
    types = tuple(str(t) for t in data.get("slice_types") or ())
    min_mem = data.get("min_gpu_memory")
    if not types and min_mem is None:
        check.err(("gpu",), "names neither slice_types nor min_gpu_memory", "one of them")
    known = sorted({p.name for model in load_catalog().models for p in model.profiles})
    allowed = check.policy.allowed_slice_types
    for i, name in enumerate(types):
        if name not in known:
            check.err(("gpu", "slice_types", i), f"unknown slice type {name!r}", ", ".join(known))
        elif allowed and name not in allowed:
            check.err(
                ("gpu", "slice_types", i),
                f"slice type {name!r} is not allowed by policy",
                ", ".join(allowed),
            )
        if name in types[:i]:
            check.err(("gpu", "slice_types", i), f"slice type {name!r} is listed twice")
    min_bytes = None
    if min_mem is not None:
        min_bytes = check.size(min_mem, ("gpu", "min_gpu_memory"), 0)
    return GpuRequest(types, min_bytes, bool(data.get("allow_sharing", False)))


def _volume(check: _Checker, data: Mapping[str, Any], path: FieldPath, ro: bool) -> SharedVolume:
    allowed = check.policy.allowed_volumes
    name = str(data["name"])
    if allowed and name not in allowed:
        check.err((*path, "name"), f"volume {name!r} is not allowed by policy", ", ".join(allowed))
    mount = str(data["mount_path"])
    if mount.rstrip("/") in ("", "/home/jovyan", "/etc", "/usr", "/bin", "/proc", "/sys"):
        check.err((*path, "mount_path"), f"{mount!r} would hide system or home files", "/shared/…")
    if "size" in data:
        check.size(data["size"], (*path, "size"), 0)
    return SharedVolume(name, mount, ro)


def _storage(check: _Checker, data: Mapping[str, Any]) -> Storage:
    policy = check.policy
    home = check.size(data.get("home_size"), ("storage", "home_size"), 250 * GIB)
    if policy.max_home_bytes is not None and home > policy.max_home_bytes:
        check.err(
            ("storage", "home_size"),
            f"{_size(home)} is above the policy maximum",
            f"<= {_size(policy.max_home_bytes)}",
        )
    storage_class = data.get("storage_class")
    classes = policy.allowed_storage_classes
    if storage_class is not None and classes and storage_class not in classes:
        check.err(
            ("storage", "storage_class"),
            f"storage class {storage_class!r} is not allowed by policy",
            ", ".join(classes),
        )
    shares = tuple(
        _volume(check, vol, ("storage", "shares", i), True)
        for i, vol in enumerate(data.get("shares") or ())
    )
    lecturer = data.get("lecturer_share")
    lecturer_vol = (
        _volume(check, lecturer, ("storage", "lecturer_share"), False) if lecturer else None
    )
    mounts = [v.mount_path for v in shares] + ([lecturer_vol.mount_path] if lecturer_vol else [])
    for i, mount in enumerate(mounts):
        if mount in mounts[:i]:
            where: FieldPath = (
                ("storage", "shares", i) if i < len(shares) else ("storage", "lecturer_share")
            )
            check.err((*where, "mount_path"), f"mount path {mount!r} is used twice", "unique paths")
    return Storage(home, shares, lecturer_vol, str(storage_class) if storage_class else None)


def _sessions(
    check: _Checker, items: list[Mapping[str, Any]], groups: tuple[str, ...]
) -> tuple[LabSession, ...]:
    out: list[tuple[int, LabSession]] = []
    for i, item in enumerate(items):
        path: FieldPath = ("sessions", i)
        try:
            ZoneInfo(str(item["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            check.err(
                (*path, "timezone"),
                f"unknown time zone {item['timezone']!r}",
                "an IANA time zone such as Europe/Berlin",
            )
            continue
        session = LabSession(
            WEEKDAYS.index(str(item["weekday"])),
            time.fromisoformat(str(item["start"])),
            time.fromisoformat(str(item["end"])),
            str(item["timezone"]),
            str(item["group"]),
            int(item["seats"]),
        )
        if session.end <= session.start:
            check.err((*path, "end"), "end must be after start", f"later than {item['start']}")
            continue
        if groups and session.group not in groups:
            check.err(
                (*path, "group"), f"group {session.group!r} is not in groups", ", ".join(groups)
            )
        for j, other in out:
            if (
                other.weekday == session.weekday
                and other.start < session.end
                and session.start < other.end
            ):
                check.err(path, f"overlaps sessions[{j}]", "sessions on separate time windows")
        out.append((i, session))
    return tuple(s for _, s in out)


def _limits(check: _Checker, data: Mapping[str, Any]) -> Limits:
    runtime = check.duration(data.get("max_runtime"), ("limits", "max_runtime"), 8 * 3600)
    idle = check.duration(data.get("idle_timeout"), ("limits", "idle_timeout"), 3600)
    if idle > runtime:
        check.err(
            ("limits", "idle_timeout"),
            f"{idle} s is longer than max_runtime ({runtime} s)",
            f"<= {runtime} s",
        )
    return Limits(runtime, idle)


def _env(check: _Checker, data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        if _SECRET.search(str(key)):
            check.err(
                ("env", str(key)),
                "looks like a secret; secrets must not be in profiles",
                "non-secret variables; mount secrets through the hub",
            )
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append((str(key), text))
    return tuple(out)


def parse_profile(
    text: str, file: str, policy: Policy | None = None
) -> tuple[CourseProfile | None, list[ProfileError]]:
    """Parse and validate profile text. Never raises; returns (profile or None, errors)."""
    try:
        return build_profile(text, file, policy or Policy())
    except Exception as exc:
        return None, [ProfileError(file, None, "", f"could not read profile: {exc}")]
