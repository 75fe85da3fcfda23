"""Which idle GPU servers to stop while students wait for a slice.

The rule: when students are queued for a slice type, the GPU servers of that type whose owners
have been inactive longer than ``idle_timeout_when_queued`` are stopped, the longest idle first,
and never more of them than students are waiting. A waiter with fallback slice types frees one
server of the first of its types that has an idle one. Servers without a GPU slice are never
candidates: only pods that hold a slice reach this module.

With GPU utilisation (dcgm-exporter metrics read from Prometheus) the GPU decides instead of the
browser: a server whose GPU has been idle for ``gpu_idle_timeout`` is a candidate even while its
browser tab keeps the hub activity fresh, and a server whose GPU is busy (a training run with the
tab closed) is never one. Servers without GPU data keep the hub-activity rule.

Pure logic: the caller passes the queue, the GPU servers, the hub's activity records, the GPU
utilisation it knows and ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hub_ext.core.admission.model import EntryKey
from hub_ext.core.capacity.model import SliceType

__all__ = [
    "CullOrder",
    "CullPlan",
    "CullPolicy",
    "Freed",
    "GpuIdle",
    "GpuServer",
    "ServerActivity",
    "Waiter",
    "plan_culls",
]


@dataclass(frozen=True)
class CullPolicy:
    """When an idle GPU server is stopped for a waiting student."""

    idle_timeout_when_queued: timedelta
    """Inactivity after which a server holding a slice is stopped while others wait for it."""
    min_queued: timedelta = timedelta(0)
    """How long a student must have waited before servers are stopped for them."""
    freed_grace: timedelta = timedelta(minutes=2)
    """How long a slice freed by a cull is counted as on its way to a waiting student."""
    gpu_idle_timeout: timedelta | None = None
    """GPU idleness after which a server is a candidate whatever its browser does (None: the
    GPU is not looked at)."""

    def __post_init__(self) -> None:
        if self.gpu_idle_timeout is not None and self.gpu_idle_timeout <= timedelta(0):
            raise ValueError("the GPU idle timeout must be a positive number of seconds")
        if self.idle_timeout_when_queued <= timedelta(0):
            raise ValueError("the idle timeout when queued must be a positive number of seconds")
        if self.min_queued < timedelta(0):
            raise ValueError("the minimum queued time must not be negative")


@dataclass(frozen=True)
class Waiter:
    """A student queued for a slice: acceptable slice types, most preferred first."""

    key: EntryKey
    slice_types: tuple[SliceType, ...]
    queued_since: datetime


@dataclass(frozen=True)
class GpuServer:
    """A started server that holds a GPU slice (its pod passed admission)."""

    key: EntryKey
    slice_type: SliceType
    pod_name: str
    stopping: bool = False
    """The pod is being deleted: its slice is about to be free."""


@dataclass(frozen=True)
class GpuIdle:
    """What the GPU metrics say about one server's slice over the last ``gpu_idle_timeout``."""

    key: EntryKey
    idle_for: timedelta | None
    """How long the GPU has been idle at least; None when it was busy in the window."""


@dataclass(frozen=True)
class Freed:
    """A server this culler stopped at ``at`` (its slice goes to a waiting student)."""

    key: EntryKey
    slice_type: SliceType
    at: datetime


@dataclass(frozen=True)
class ServerActivity:
    """The hub's view of one server: its last activity and whether it is busy changing state."""

    key: EntryKey
    last_activity: datetime | None
    started: datetime | None
    ready: bool = True
    pending: str | None = None

    def idle_since(self) -> datetime | None:
        """The time the server was last seen active (its start when it never was)."""
        return self.last_activity or self.started


@dataclass(frozen=True)
class CullOrder:
    """One server to stop, with the facts that justify it."""

    key: EntryKey
    slice_type: SliceType
    pod_name: str
    idle_for: timedelta
    waiting: int
    """Students queued for this slice type when the decision was taken."""
    for_waiter: EntryKey

    @property
    def reason(self) -> str:
        seconds = int(self.idle_for.total_seconds())
        idle = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
        who = self.for_waiter.user + (
            f"/{self.for_waiter.server_name}" if self.for_waiter.server_name else ""
        )
        return (
            f"GPU slice {self.slice_type} idle for {idle} while {self.waiting} "
            f"student(s) wait for {self.slice_type} (freed for {who})"
        )


@dataclass(frozen=True)
class CullPlan:
    """The outcome of one check: servers to stop and the queue it was based on."""

    orders: tuple[CullOrder, ...]
    waiting: Mapping[SliceType, int] = field(default_factory=dict, hash=False)


def _waiting_per_type(waiters: Iterable[Waiter]) -> dict[SliceType, int]:
    counts: dict[SliceType, int] = {}
    for waiter in waiters:
        for slice_type in waiter.slice_types:
            counts[slice_type] = counts.get(slice_type, 0) + 1
    return counts


def _candidates(
    now: datetime,
    servers: Iterable[GpuServer],
    activity: Mapping[EntryKey, ServerActivity],
    policy: CullPolicy,
    gpu: Mapping[EntryKey, GpuIdle],
) -> dict[SliceType, list[tuple[GpuServer, timedelta]]]:
    by_type: dict[SliceType, list[tuple[GpuServer, timedelta]]] = {}
    for server in servers:
        record = activity.get(server.key)
        if record is None or not record.ready or record.pending:
            continue
        since = record.idle_since()
        if since is None:
            continue
        idle = now - since
        usage = gpu.get(server.key) if policy.gpu_idle_timeout is not None else None
        if usage is not None:
            # the GPU decides: busy is never idle, idle long enough is idle whatever the tab does
            if usage.idle_for is None or policy.gpu_idle_timeout is None:
                continue
            if usage.idle_for >= policy.gpu_idle_timeout:
                by_type.setdefault(server.slice_type, []).append(
                    (server, max(idle, usage.idle_for))
                )
            continue
        if idle >= policy.idle_timeout_when_queued:
            by_type.setdefault(server.slice_type, []).append((server, idle))
    for rows in by_type.values():
        rows.sort(key=lambda row: (-row[1], row[0].key))
    return by_type


def _freeing(
    now: datetime,
    servers: Iterable[GpuServer],
    records: Mapping[EntryKey, ServerActivity],
    freed: Iterable[Freed],
    grace: timedelta,
) -> dict[EntryKey, SliceType]:
    """Slices already on their way to a waiter: stopping pods, servers the hub no longer runs
    (or is stopping) and recent culls."""
    freeing = {f.key: f.slice_type for f in freed if timedelta(0) <= now - f.at <= grace}
    for server in servers:
        record = records.get(server.key)
        if server.stopping or record is None or record.pending == "stop":
            freeing.setdefault(server.key, server.slice_type)
    return freeing


def plan_culls(
    now: datetime,
    waiters: Iterable[Waiter],
    servers: Iterable[GpuServer],
    activity: Iterable[ServerActivity],
    policy: CullPolicy,
    freed: Iterable[Freed] = (),
    gpu: Iterable[GpuIdle] = (),
) -> CullPlan:
    """The servers to stop now: at most one per waiting student, the longest idle first.

    Each slice already being freed (see :func:`_freeing`) serves one waiter first, so a slow
    pod deletion or a pending admission never makes the culler stop a second server.
    """
    eligible = sorted(
        (w for w in waiters if w.slice_types and now - w.queued_since >= policy.min_queued),
        key=lambda w: (w.queued_since, w.key),
    )
    waiting = _waiting_per_type(eligible)
    servers = tuple(servers)
    records = {a.key: a for a in activity}
    spare: dict[SliceType, int] = {}
    for slice_type in _freeing(now, servers, records, freed, policy.freed_grace).values():
        spare[slice_type] = spare.get(slice_type, 0) + 1
    waiting_keys = {w.key for w in eligible}
    pool = _candidates(
        now,
        (s for s in servers if s.key not in waiting_keys and not s.stopping),
        records,
        policy,
        {g.key: g for g in gpu},
    )
    orders: list[CullOrder] = []
    for waiter in eligible:
        served = next((t for t in waiter.slice_types if spare.get(t, 0) > 0), None)
        if served is not None:
            spare[served] -= 1
            continue
        for slice_type in waiter.slice_types:
            rows = pool.get(slice_type)
            if rows:
                server, idle = rows.pop(0)
                orders.append(
                    CullOrder(
                        server.key,
                        slice_type,
                        server.pod_name,
                        idle,
                        waiting[slice_type],
                        waiter.key,
                    )
                )
                break
    return CullPlan(tuple(orders), waiting)
