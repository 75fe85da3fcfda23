"""Recording core/v1 Events the way Kubernetes components do."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.informer import request


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(obj: dict[str, Any], reason: str, message: str, kind: str, component: str) -> dict:
    meta = obj.get("metadata") or {}
    stamp = now_iso()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion") or "v1",
            "kind": obj.get("kind") or "Pod",
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
    }


async def record(
    core: CoreV1Api,
    obj: dict[str, Any],
    reason: str,
    message: str,
    *,
    component: str,
    warning: bool = False,
) -> None:
    """Create an Event about ``obj``; failures are ignored (events are best effort)."""
    body = event_body(obj, reason, message, "Warning" if warning else "Normal", component)
    with contextlib.suppress(ApiException, aiohttp.ClientError, OSError):
        await request(
            core.create_namespaced_event(
                body["metadata"]["namespace"], body, _preload_content=False
            )
        )
