"""From course profiles to what the spawner and the admission controller need.

Reads :class:`hub_ext.core.profiles.model.CourseProfile` objects by their agreed attribute names
(slug, display_name, description, groups, image, default_url, resources, gpu, storage, sessions,
limits, env) and tolerates the optional ones being absent, so that a profile without GPU, sessions
or limits works.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from hub_ext.core.admission.model import AdmissionPolicy, CourseSlug, Quotas, Reservation
from hub_ext.core.capacity.model import SliceType
from hub_ext.core.manifests import GiB
from hub_ext.core.profiles.model import GpuRequest, SharedVolume

DEFAULT_CPU = 4.0
DEFAULT_MEMORY = 16 * GiB


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if obj is None:
            return default
        if isinstance(obj, Mapping) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return default


def slug(profile: Any) -> str:
    return str(_get(profile, "slug"))


def groups(profile: Any) -> tuple[str, ...]:
    return tuple(str(g) for g in _get(profile, "groups", default=()) or ())


def slice_types(profile: Any) -> tuple[str, ...]:
    gpu = _get(profile, "gpu")
    if gpu is None:
        return ()
    types = _get(gpu, "slice_types", default=()) or ()
    if isinstance(types, str):
        types = (types,)
    return tuple(str(t) for t in types)


def gpu_request(profile: Any) -> GpuRequest | None:
    types = slice_types(profile)
    if not types:
        return None
    return GpuRequest(types)


def resources(profile: Any) -> tuple[float, float, int, int]:
    """(cpu guarantee, cpu limit, memory guarantee, memory limit), defaults 4 cores / 16 GiB."""
    res = _get(profile, "resources")
    cpu_g = float(_get(res, "cpu_guarantee", "cpu_request", default=DEFAULT_CPU))
    cpu_l = float(_get(res, "cpu_limit", default=cpu_g))
    mem_g = int(_get(res, "memory_guarantee_bytes", "memory_guarantee", default=DEFAULT_MEMORY))
    mem_l = int(_get(res, "memory_limit_bytes", "memory_limit", default=mem_g))
    return cpu_g, cpu_l, mem_g, mem_l


def home_size(profile: Any, default: int = 250 * GiB) -> int:
    storage = _get(profile, "storage")
    return int(_get(storage, "home_bytes", "home_size_bytes", default=default) or default)


def shared_volumes(profile: Any) -> tuple[SharedVolume, ...]:
    storage = _get(profile, "storage")
    out = []
    for vol in _get(storage, "shares", "shared_volumes", default=()) or ():
        claim = str(_get(vol, "claim_name", "name", default=""))
        path = str(_get(vol, "mount_path", "path", default=f"/shared/{claim}"))
        if claim:
            out.append(SharedVolume(claim, path))
    return tuple(out)


def limit_seconds(profile: Any, *names: str) -> int | None:
    value = _get(_get(profile, "limits"), *names)
    if value is None:
        return None
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value)


def image(profile: Any, default: str) -> str:
    ref = _get(profile, "image")
    if ref is None:
        return default
    return str(getattr(ref, "reference", ref))


def env(profile: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(_get(profile, "env", default={}) or {}).items()}


def session_now(profile: Any, user_groups: Iterable[str], now: datetime) -> tuple[str, datetime]:
    """(group, end) of the user's lab session running at ``now``; ("", now) if none."""
    mine = set(user_groups)
    for session in _get(profile, "sessions", default=()) or ():
        group = str(_get(session, "group", default=""))
        if group not in mine:
            continue
        for start, end in session.occurrences_between(now - timedelta(days=1), now + timedelta(1)):
            if start <= now < end:
                return group, end
    return "", now


def reservations(profiles: Iterable[Any], now: datetime) -> tuple[Reservation, ...]:
    """The lab-session reservations whose window contains ``now``."""
    out = []
    for profile in profiles:
        types = slice_types(profile)
        if not types:
            continue
        for session in _get(profile, "sessions", default=()) or ():
            occurrences = session.occurrences_between(now - timedelta(days=1), now + timedelta(1))
            for start, end in occurrences:
                if start <= now < end:
                    out.append(
                        Reservation(
                            CourseSlug(slug(profile)),
                            str(_get(session, "group")),
                            SliceType(types[0]),
                            int(_get(session, "seats", default=0)),
                            start,
                            end,
                        )
                    )
    return tuple(out)


def policy(
    profiles: Iterable[Any], now: datetime, quotas: Quotas, claim_minutes: int
) -> AdmissionPolicy:
    return AdmissionPolicy(quotas, reservations(profiles, now), timedelta(minutes=claim_minutes))


def policy_quotas(path: Path) -> dict[str, dict[str, int]]:
    """The ``quotas`` section of the profile policy file (``{"courses": {...}, "slice_types":
    {...}}``); empty when the file names none. Raises ValueError naming the file and problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"profile policy file {path}: cannot be read: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"profile policy file {path}: must be a mapping")
    quotas = data.get("quotas") or {}
    if not isinstance(quotas, Mapping) or not all(isinstance(v, Mapping) for v in quotas.values()):
        raise ValueError(
            f"profile policy file {path}: quotas must map courses and slice_types to "
            "{name: maximum servers}"
        )
    return {str(k): {str(n): v for n, v in dict(v).items()} for k, v in quotas.items()}


def kubespawner_override(profile: Any) -> dict[str, Any]:
    """The profile's KubeSpawner settings (validated when the profile was loaded), by name: a
    mapping as it is, or CourseProfile's (name, JSON text) pairs decoded."""
    pairs = _get(profile, "kubespawner_override", default=()) or ()
    if isinstance(pairs, Mapping):
        return {str(k): v for k, v in pairs.items()}
    return {str(k): json.loads(v) for k, v in pairs}
