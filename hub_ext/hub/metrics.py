"""Prometheus metrics of LabHub.

Every metric lives in the default registry, so the hub's own ``/hub/metrics`` endpoint exports
them next to JupyterHub's metrics. Names follow JupyterHub's ``<noun>_<verb>_<unit>`` style with
the ``labhub_`` prefix. Label values are bounded: slice types, zones, course slugs, reasons and
LDAP server URLs, never user names.

The adapters and hub classes update these objects; :mod:`hub_ext.core` never imports this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ADMISSIONS",
    "LDAP_LOGIN_DURATION",
    "LDAP_LOGIN_FAILURES",
    "PROFILES_LOADED",
    "PROFILE_RELOAD_ERRORS",
    "QUEUE_LENGTH",
    "QUEUE_WAIT_DURATION",
    "REFUSALS",
    "RESERVATIONS_ACTIVE",
    "SLICES_FREE",
    "SLICES_TOTAL",
    "SLICES_USED",
    "SPAWN_FAILURES",
    "BackupStatusCollector",
    "SliceGauge",
    "register_backup_status",
    "set_slice_gauges",
]

#: Queue waits in a lab are seconds to tens of minutes.
_WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, float("inf"))
#: An LDAP bind is milliseconds; a failover after a timeout costs seconds.
_LOGIN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf"))

SLICES_TOTAL = Gauge(
    "labhub_slices_total",
    "GPU slices that schedulable nodes advertise, by slice type and zone (server room).",
    ["slice_type", "zone"],
)
SLICES_FREE = Gauge(
    "labhub_slices_free",
    "GPU slices neither held by a running or starting server nor claimed by a reservation.",
    ["slice_type", "zone"],
)
SLICES_USED = Gauge(
    "labhub_slices_used",
    "GPU slices held by running or starting user servers.",
    ["slice_type", "zone"],
)
QUEUE_LENGTH = Gauge(
    "labhub_queue_length",
    "Students waiting for a GPU slice, by slice type and course.",
    ["slice_type", "course"],
)
QUEUE_WAIT_DURATION = Histogram(
    "labhub_queue_wait_duration_seconds",
    "Time from joining the queue to leaving it; outcome is admitted, cancelled or timeout.",
    ["slice_type", "outcome"],
    buckets=_WAIT_BUCKETS,
)
ADMISSIONS = Counter(
    "labhub_admissions",
    "Servers admitted onto a GPU slice, by slice type and course.",
    ["slice_type", "course"],
)
REFUSALS = Counter(
    "labhub_refusals",
    "Start requests refused before or while queueing, by reason (quota, not-allowed, "
    "no-capacity, queue-timeout, invalid-options).",
    ["reason"],
)
RESERVATIONS_ACTIVE = Gauge(
    "labhub_reservations_active",
    "Lab-session reservations currently in force, by course.",
    ["course"],
)
LDAP_LOGIN_DURATION = Histogram(
    "labhub_ldap_login_duration_seconds",
    "Time to authenticate one login against LDAP, including failover; outcome is success or "
    "failure.",
    ["outcome"],
    buckets=_LOGIN_BUCKETS,
)
LDAP_LOGIN_FAILURES = Counter(
    "labhub_ldap_login_failures",
    "Failed LDAP logins by reason (bad-credentials, not-in-group, throttled, server-down, "
    "invalid-username) and by the server that answered (or 'none').",
    ["reason", "server"],
)
PROFILES_LOADED = Gauge(
    "labhub_profiles_loaded",
    "Course profiles the hub currently offers.",
)
PROFILE_RELOAD_ERRORS = Counter(
    "labhub_profile_reload_errors",
    "Failed attempts to reload course profiles (the last good set stays in use), by source.",
    ["source"],
)
SPAWN_FAILURES = Counter(
    "labhub_spawn_failures",
    "User servers that failed to start after admission, by reason.",
    ["reason"],
)


@dataclass(frozen=True)
class SliceGauge:
    """One (slice type, zone) row of the slice gauges."""

    slice_type: str
    zone: str
    total: int
    free: int
    used: int


def set_slice_gauges(rows: Iterable[SliceGauge]) -> None:
    """Replace the three slice gauges with ``rows``; rows that vanished drop out."""
    for gauge in (SLICES_TOTAL, SLICES_FREE, SLICES_USED):
        gauge.clear()
    for row in rows:
        SLICES_TOTAL.labels(row.slice_type, row.zone).set(row.total)
        SLICES_FREE.labels(row.slice_type, row.zone).set(row.free)
        SLICES_USED.labels(row.slice_type, row.zone).set(row.used)


class BackupStatusCollector:
    """Exports the off-site backup job's metrics, read from the file the job's ConfigMap fills.

    The backup job (``labhub-backup run --status-configmap``) keeps its last run's metrics in a
    ConfigMap; the chart mounts it into the hub, and this collector reads it on every scrape, so
    that Prometheus sees the job's metrics on ``/hub/metrics`` without a Pushgateway. A missing
    or unreadable file exports nothing (the ``absent()`` alert then fires).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        try:
            text = self.path.read_text()
        except OSError:
            return
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            return
        for family in families:
            if family.name.startswith("labhub_backup_"):
                yield family


def register_backup_status(path: Path, registry: CollectorRegistry = REGISTRY) -> None:
    """Export the backup job's metrics from ``path`` (once per registry)."""
    registry.register(BackupStatusCollector(path))
