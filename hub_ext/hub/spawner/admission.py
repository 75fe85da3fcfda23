"""The hub's side of slice admission: one controller per namespace, metrics, shutdown.

:func:`controller_for` starts the :class:`~hub_ext.adapters.k8s.admission.AdmissionController`
of a spawner's namespace on first use (one per hub process and namespace), wires the Prometheus
metrics to its decision passes and installs a shutdown hook on the JupyterHub application that
stops every controller before the hub's own clean-up. The set of servers this hub is spawning
right now tells the controller which queued pods nobody waits for any more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import CoreV1Api

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.adapters.k8s.admission import AdmissionController, PassReport
from hub_ext.adapters.k8s.retry import RetryPolicy
from hub_ext.adapters.k8s.usage import ConfigMapUsageStore
from hub_ext.core.admission.model import AdmissionPolicy, EntryKey, Quotas, UserName
from hub_ext.core.admission.rules import AdmissionRule, parse_quotas
from hub_ext.core.capacity.rooms import RoomOrder
from hub_ext.hub import metrics

log = logging.getLogger(__name__)
_CONTROLLERS: dict[tuple[int, str], AdmissionController] = {}
_LOCK: dict[int, asyncio.Lock] = {}
_SPAWNING: set[tuple[str, EntryKey]] = set()
_SOURCES: dict[str, tuple[Any, list[float]]] = {}
PROFILE_RELOAD_SECONDS = 10.0


def profiles_from_dir(path: str, policy_file: str = "") -> list[Any]:
    """The profiles of ``path`` from a shared ProfileSource, re-read at most every 10 s (the
    source keeps the last good version of a broken course file)."""
    from hub_ext.adapters.profile_source import ProfileSource

    entry = _SOURCES.get(path)
    if entry is None:
        policy = Path(policy_file) if policy_file else None
        entry = _SOURCES[path] = (ProfileSource(Path(path), policy_file=policy), [0.0])
    source, last = entry
    if time.monotonic() - last[0] > PROFILE_RELOAD_SECONDS:
        last[0] = time.monotonic()
        errors = source.reload()
        for error in errors:
            log.warning("course profile not loaded: %s", error)
        for warning in source.warnings:
            log.warning("course profile warning: %s", warning)
        if errors:
            metrics.PROFILE_RELOAD_ERRORS.labels("profiles_dir").inc()
        metrics.PROFILES_LOADED.set(len(source.profiles))
    return list(source.profiles.values())


def profile_problems() -> list[str]:
    """What the last reload of every profiles folder found wrong (for the admin view): broken
    course files, an unreadable policy, or no course at all."""
    return [str(error) for source, _ in _SOURCES.values() for error in source.last_errors]


def admission_quotas(configured: dict[str, Any], policy_file: str) -> Quotas:
    """``admission_quotas`` merged with the ``quotas`` of the profile policy file (where both
    name a course or slice type, the smaller limit applies)."""
    quotas = parse_quotas(configured, "c.LabKubeSpawner.admission_quotas")
    if policy_file:
        quotas = quotas.merged(prof.policy_rules(Path(policy_file)).quotas)
    return quotas


def admission_rules(policy_file: str) -> tuple[AdmissionRule, ...]:
    """The admission rules the profile policy file configures (beyond the quotas)."""
    return prof.policy_rules(Path(policy_file)).rules if policy_file else ()


def existing_controller(namespace: str) -> AdmissionController | None:
    """The running controller of ``namespace`` in this hub process, if one was started."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _CONTROLLERS.get((id(loop), namespace))


def running_controllers() -> list[AdmissionController]:
    """The running controllers of this hub process's event loop (one per user namespace)."""
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        return []
    return [c for (lid, _), c in _CONTROLLERS.items() if lid == loop_id and c.running]


class SpawnTracker:
    """Marks a server as being spawned by this hub while its start runs (a context manager)."""

    def __init__(self, namespace: str, user: str, server_name: str) -> None:
        self.item = (namespace, EntryKey(UserName(user), server_name))

    def __enter__(self) -> SpawnTracker:
        _SPAWNING.add(self.item)
        return self

    def __exit__(self, *exc: object) -> None:
        _SPAWNING.discard(self.item)


async def controller_for(
    api_client: Any,
    namespace: str,
    policy: Callable[[datetime], AdmissionPolicy],
    abandon_after: float,
    rooms: RoomOrder | None = None,
    retry: RetryPolicy | None = None,
) -> AdmissionController:
    """The hub's admission controller for ``namespace`` (started on first use)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), namespace)
    controller = _CONTROLLERS.get(key)
    if controller is not None:
        return controller
    lock = _LOCK.setdefault(id(loop), asyncio.Lock())
    async with lock:
        controller = _CONTROLLERS.get(key)
        if controller is None:
            controller = AdmissionController(
                api_client,
                namespace,
                policy,
                abandon_after=abandon_after,
                spawning=lambda entry: (namespace, entry) in _SPAWNING,
                rooms=rooms,
                retry=retry,
                usage=ConfigMapUsageStore(CoreV1Api(api_client), namespace, retry),
            )
            controller.observers.append(MetricsPublisher(controller))
            await controller.start()
            _CONTROLLERS[key] = controller
            install_shutdown_hook()
    return controller


async def stop_admission_controllers() -> None:
    """Stop the admission controllers this hub process started (the hub's shutdown hook)."""
    controllers = list(_CONTROLLERS.values())
    _CONTROLLERS.clear()
    for controller in controllers:
        await controller.stop()


def install_shutdown_hook() -> bool:
    """Make the running JupyterHub stop the controllers first when it shuts down.

    JupyterHub has no shutdown hook of its own; its ``cleanup`` runs on every shutdown path
    (signal, ``stop()``, exit), so the hook wraps it. Returns False outside a JupyterHub process.
    """
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return False
    app = JupyterHub.instance()
    if getattr(app, "_labhub_shutdown_hook", False):
        return True
    original = app.cleanup

    async def cleanup() -> None:
        count = len(_CONTROLLERS)
        await stop_admission_controllers()
        app.log.info("LabHub: %d slice admission controller(s) stopped", count)
        await original()

    app.cleanup = cleanup
    app._labhub_shutdown_hook = True
    return True


class MetricsPublisher:
    """Updates :mod:`hub_ext.hub.metrics` after every decision pass of one controller."""

    def __init__(self, controller: AdmissionController) -> None:
        self.controller = controller

    def __call__(self, report: PassReport) -> None:
        for exit_ in report.exits:
            metrics.QUEUE_WAIT_DURATION.labels(exit_.slice_type, exit_.outcome).observe(
                max(0.0, exit_.waited.total_seconds())
            )
            if exit_.outcome == "admitted":
                metrics.ADMISSIONS.labels(exit_.slice_type, exit_.course).inc()
            elif exit_.outcome == "timeout":
                metrics.REFUSALS.labels("queue-timeout").inc()
        view = self.controller.overview(report.now)
        metrics.set_slice_gauges(
            metrics.SliceGauge(z.slice_type, z.zone, z.total, z.free, z.used) for z in view.zones
        )
        metrics.QUEUE_LENGTH.clear()
        for (slice_type, course), n in view.queue_lengths().items():
            metrics.QUEUE_LENGTH.labels(slice_type, course).set(n)
        metrics.RESERVATIONS_ACTIVE.clear()
        active: dict[str, int] = {}
        for r in view.reservations:
            active[r.course] = active.get(r.course, 0) + 1
        for reserved, n in active.items():
            metrics.RESERVATIONS_ACTIVE.labels(reserved).set(n)
