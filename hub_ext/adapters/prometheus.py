"""GPU utilisation per pod from Prometheus' HTTP API (dcgm-exporter metrics).

dcgm-exporter labels its samples with the pod and namespace that hold the GPU (or MIG slice).
The culler asks for the highest utilisation of each pod over the last ``window``:

* ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (graphics engine active ratio, 0 to 1) where profiling
  metrics are on;
* ``DCGM_FI_DEV_GPU_UTIL`` (percent, 0 to 100) otherwise.

A pod whose highest value stays below ``busy_percent`` has had an idle GPU for the whole window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import aiohttp

#: (metric, factor to percent), most precise first.
GPU_METRICS: tuple[tuple[str, float], ...] = (
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 100.0),
    ("DCGM_FI_DEV_GPU_UTIL", 1.0),
)
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or answered with an error; the message says which."""


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    timeout_seconds: float = 5.0
    busy_percent: float = 5.0
    pod_label: str = "pod"
    namespace_label: str = "namespace"

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"the Prometheus URL {self.url!r} must start with http:// or https://")
        for label in (self.pod_label, self.namespace_label):
            if not _LABEL.match(label):
                raise ValueError(f"{label!r} is not a Prometheus label name")
        if self.timeout_seconds <= 0:
            raise ValueError("the Prometheus timeout must be positive")


@dataclass(frozen=True)
class GpuUtilisation:
    """The highest utilisation (percent) of each pod over the window, and the metric used."""

    metric: str | None
    peak_percent: dict[str, float]

    def idle_pods(self, busy_percent: float) -> set[str]:
        return {pod for pod, peak in self.peak_percent.items() if peak < busy_percent}


async def _query(
    session: aiohttp.ClientSession, settings: PrometheusSettings, query: str
) -> list[dict[str, object]]:
    url = settings.url.rstrip("/") + "/api/v1/query"
    timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
    try:
        async with session.get(url, params={"query": query}, timeout=timeout) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise PrometheusError(f"{url} answered HTTP {resp.status}: {text[:200]}")
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PrometheusError(f"{url} does not answer ({exc or type(exc).__name__})") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"{url} refused the query: {body.get('error', body)}")
    result = (body.get("data") or {}).get("result") or []
    return list(result)


async def gpu_utilisation(
    session: aiohttp.ClientSession,
    settings: PrometheusSettings,
    namespace: str,
    window: timedelta,
) -> GpuUtilisation:
    """Peak GPU utilisation per pod of ``namespace`` over ``window``, from the first metric
    that has data."""
    seconds = max(1, int(window.total_seconds()))
    selector = f'{settings.namespace_label}="{namespace}"'
    for metric, factor in GPU_METRICS:
        query = f"max by ({settings.pod_label}) (max_over_time({metric}{{{selector}}}[{seconds}s]))"
        rows = await _query(session, settings, query)
        peaks: dict[str, float] = {}
        for row in rows:
            labels = row.get("metric") or {}
            value = row.get("value") or [0, "0"]
            pod = labels.get(settings.pod_label) if isinstance(labels, dict) else None
            if pod and isinstance(value, list) and len(value) == 2:
                peaks[str(pod)] = float(value[1]) * factor
        if peaks:
            return GpuUtilisation(metric, peaks)
    return GpuUtilisation(None, {})
