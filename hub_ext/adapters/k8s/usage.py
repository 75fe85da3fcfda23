"""The durable store of GPU usage: finished sessions kept in a ConfigMap of the namespace.

The admission controller notices in each pass which sessions stopped holding a slice since the
last one (:func:`hub_ext.core.admission.usage.ended_sessions`) and writes them here, so that a
usage-based rule (a per-student GPU-hour budget) sees them after the pod is deleted and after a
hub restart. :class:`UsageStore` is the interface; :class:`ConfigMapUsageStore` keeps the
records as JSON in the ConfigMap ``labhub-gpu-usage`` (one per user namespace, replaced whole
on each change, records older than ``keep`` dropped); :class:`MemoryUsageStore` keeps them in
the process (tests, and controllers started without a store).

A session that ends while no hub runs is not recorded (its pod is gone when the hub looks).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.objects import parse_time
from hub_ext.adapters.k8s.retry import GaveUp, RetryPolicy, with_retries
from hub_ext.core.admission.model import CourseSlug, RunningSession, UserName
from hub_ext.core.admission.usage import UsageRecord, ended_sessions, prune
from hub_ext.core.capacity.model import SliceType

__all__ = ["CONFIGMAP", "ConfigMapUsageStore", "MemoryUsageStore", "UsageLedger", "UsageStore"]

log = logging.getLogger(__name__)
CONFIGMAP = "labhub-gpu-usage"
DATA_KEY = "records.json"


class UsageStore(Protocol):
    """Where finished GPU sessions are kept."""

    async def load(self) -> tuple[UsageRecord, ...]: ...

    async def save(self, records: tuple[UsageRecord, ...]) -> None: ...


class MemoryUsageStore:
    """Usage records in this process only."""

    def __init__(self) -> None:
        self.records: tuple[UsageRecord, ...] = ()

    async def load(self) -> tuple[UsageRecord, ...]:
        return self.records

    async def save(self, records: tuple[UsageRecord, ...]) -> None:
        self.records = records


def encode(records: tuple[UsageRecord, ...]) -> str:
    rows = [
        [r.user, r.course, r.slice_type, r.start.isoformat(), r.end.isoformat()] for r in records
    ]
    return json.dumps(rows, separators=(",", ":"))


def decode(text: str) -> tuple[UsageRecord, ...]:
    """Records from the ConfigMap's JSON; rows that cannot be read are skipped."""
    out: list[UsageRecord] = []
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        log.warning("GPU usage ConfigMap %s holds no valid JSON; starting empty", CONFIGMAP)
        return ()
    for row in rows if isinstance(rows, list) else ():
        if not (isinstance(row, list) and len(row) == 5):
            continue
        start, end = parse_time(str(row[3])), parse_time(str(row[4]))
        if start is None or end is None:
            continue
        out.append(
            UsageRecord(
                UserName(str(row[0])), CourseSlug(str(row[1])), SliceType(str(row[2])), start, end
            )
        )
    return tuple(out)


class ConfigMapUsageStore:
    """Usage records in the ConfigMap ``labhub-gpu-usage`` of ``namespace``."""

    def __init__(self, core: CoreV1Api, namespace: str, retry: RetryPolicy | None = None) -> None:
        # dict bodies are sent as they are (kubernetes_asyncio types them as models)
        self.core: Any = core
        self.namespace, self.retry = namespace, retry or RetryPolicy()

    async def load(self) -> tuple[UsageRecord, ...]:
        try:
            cm: Any = await with_retries(
                lambda: self.core.read_namespaced_config_map(CONFIGMAP, self.namespace),
                f"reading ConfigMap {CONFIGMAP}",
                self.retry,
            )
        except ApiException as error:
            if error.status == 404:
                return ()
            raise
        return decode(((cm.data or {}) if cm is not None else {}).get(DATA_KEY, ""))

    async def save(self, records: tuple[UsageRecord, ...]) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CONFIGMAP,
                "labels": {"app.kubernetes.io/managed-by": "labhub"},
            },
            "data": {DATA_KEY: encode(records)},
        }

        async def write() -> None:
            try:
                await self.core.replace_namespaced_config_map(CONFIGMAP, self.namespace, body)
            except ApiException as error:
                if error.status != 404:
                    raise
                await self.core.create_namespaced_config_map(self.namespace, body)

        await with_retries(write, f"writing ConfigMap {CONFIGMAP}", self.retry)


class UsageLedger:
    """The controller's view of the usage records: loaded once, extended per pass, saved."""

    def __init__(self, store: UsageStore, keep: timedelta = timedelta(days=8)) -> None:
        self.store, self.keep = store, keep
        self.records: tuple[UsageRecord, ...] = ()
        self._running: tuple[RunningSession, ...] | None = None
        self._dirty = False

    async def load(self) -> None:
        try:
            self.records = await self.store.load()
        except (ApiException, GaveUp) as error:
            log.warning("could not read the GPU usage records: %s (starting empty)", error)

    def observe(self, now: datetime, running: tuple[RunningSession, ...]) -> bool:
        """Record the sessions that stopped since the last pass; True when records changed."""
        before, self._running = self._running, running
        if before is None:
            return False
        ended = ended_sessions(before, running, now)
        if ended:
            self.records = prune((*self.records, *ended), now - self.keep)
            self._dirty = True
        return bool(ended)

    async def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            await self.store.save(self.records)
        except (ApiException, GaveUp) as error:
            self._dirty = True
            log.warning("could not save the GPU usage records: %s (next pass tries again)", error)
