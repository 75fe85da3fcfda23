"""The admin view's picture of the lab: slices and holders, queues, today's sessions, GPUs.

:func:`build_lab_overview` combines the admission controller's
:class:`~hub_ext.core.admission.overview.AdmissionOverview` (slices per node and type with their
holders, the queue per course, active reservations) with what the watched Node objects say about
the GPUs (model, MIG configuration, slices per type: the MIG plan in force) and the lab sessions
of the course profiles that fall on the current day. :func:`to_json` turns the result into plain
JSON values for ``/hub/labhub/api/overview``.

Everything here is computed from literal Kubernetes objects and profiles, so it is tested without
a cluster.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from hub_ext.adapters.k8s.informer import Obj
from hub_ext.adapters.k8s.objects import node_from_object
from hub_ext.core.admission.overview import AdmissionOverview
from hub_ext.core.capacity.model import node_slice_resources, parse_gpu_labels
from hub_ext.core.mig.catalog import load_catalog
from hub_ext.core.profiles.model import CourseProfile


@dataclass(frozen=True)
class GpuGroup:
    """Nodes of one zone with the same GPU model and MIG configuration."""

    zone: str
    model: str
    """Canonical model name where the catalog knows the product, else the product label."""
    mig_config: str
    """The mig-parted configuration name (``all-1g.10gb``), ``""`` when not labelled."""
    strategy: str
    nodes: tuple[str, ...]
    devices: int
    """GPU devices as the nodes count them (MIG instances under the single strategy)."""
    slices: tuple[tuple[str, int], ...]
    """Slices per slice type advertised by these nodes."""
    ready: int
    """Nodes that are Ready and not cordoned."""


@dataclass(frozen=True)
class SessionToday:
    """One occurrence of a course's lab session on the current day."""

    course: str
    title: str
    group: str
    seats: int
    start: datetime
    end: datetime
    active: bool


@dataclass(frozen=True)
class LabOverview:
    now: datetime
    admission: AdmissionOverview | None
    """None while no admission controller runs in this hub (no server started yet)."""
    gpus: tuple[GpuGroup, ...]
    sessions: tuple[SessionToday, ...]


def _model_name(product: str | None) -> str:
    if not product:
        return "unknown"
    base = product.split("-MIG-")[0]
    base = base.removesuffix("-SHARED")
    try:
        return load_catalog().model(base).name
    except ValueError:
        return base


def gpu_groups(nodes: Iterable[Obj]) -> tuple[GpuGroup, ...]:
    """GPU nodes grouped by zone, model and MIG configuration (the MIG plan in force)."""
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for obj in nodes:
        node = node_from_object(obj)
        labels = parse_gpu_labels(node.labels)
        resources = node_slice_resources(node)
        if not resources and labels.product is None:
            continue
        model, config = _model_name(labels.product), labels.mig_config or ""
        key = (node.zone, model, config, labels.mig_strategy.value)
        row = groups.setdefault(key, {"nodes": [], "devices": 0, "slices": {}, "ready": 0})
        row["nodes"].append(node.name)
        row["devices"] += labels.count
        row["ready"] += int(node.offers_slices)
        for res in resources:
            row["slices"][res.slice_type] = row["slices"].get(res.slice_type, 0) + res.count
    return tuple(
        GpuGroup(
            zone=zone,
            model=model,
            mig_config=config,
            strategy=strategy,
            nodes=tuple(sorted(row["nodes"])),
            devices=row["devices"],
            slices=tuple(sorted(row["slices"].items())),
            ready=row["ready"],
        )
        for (zone, model, config, strategy), row in sorted(groups.items())
    )


def sessions_today(profiles: Iterable[CourseProfile], now: datetime) -> tuple[SessionToday, ...]:
    """The lab sessions of ``profiles`` that occur on ``now``'s day (UTC), by start time."""
    now = now.astimezone(UTC)
    day = datetime.combine(now.date(), time(0), tzinfo=UTC)
    found: list[SessionToday] = []
    for profile in profiles:
        for session in profile.sessions:
            for start, end in session.occurrences_between(day, day + timedelta(days=1)):
                found.append(
                    SessionToday(
                        course=profile.slug,
                        title=profile.display_name,
                        group=session.group,
                        seats=session.seats,
                        start=start,
                        end=end,
                        active=start <= now < end,
                    )
                )
    return tuple(sorted(found, key=lambda s: (s.start, s.course, s.group)))


def build_lab_overview(
    now: datetime,
    admission: AdmissionOverview | None,
    nodes: Iterable[Obj],
    profiles: Iterable[CourseProfile],
) -> LabOverview:
    return LabOverview(now, admission, gpu_groups(nodes), sessions_today(profiles, now))


def to_json(value: Any) -> Any:
    """Plain JSON values: dataclasses become objects, times ISO 8601 text, durations seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
