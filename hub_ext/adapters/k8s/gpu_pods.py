"""The Kubernetes side of the GPU idle culler: queued and running GPU pods as typed values.

Only pods carrying the ``labhub.io/slice-type`` label (servers that asked for a GPU slice) are
listed. A pod behind the ``labhub.io/slice-admission`` gate is a waiting student; an admitted,
live pod is a server holding a slice. Queued pods detached from their hub, and those of
students who are not members of the course, wait for nothing and are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from hub_ext.adapters.k8s.informer import Obj
from hub_ext.adapters.k8s.objects import (
    entry_key,
    is_gated,
    queue_entry,
    requested_slice_type,
    running_session,
)
from hub_ext.core.capacity.model import SliceType
from hub_ext.core.cull import GpuServer, Waiter
from hub_ext.core.k8s_names import LABEL_SLICE_TYPE

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class GpuPods:
    """What the cluster says: students waiting for a slice and servers holding one."""

    waiters: tuple[Waiter, ...]
    servers: tuple[GpuServer, ...]


def gpu_pods_from_objects(objs: Iterable[Obj], now: datetime) -> GpuPods:
    """Sort pod objects (JSON dicts) into waiters and slice-holding servers.

    A slice-holding pod that is being deleted is kept, marked ``stopping``: its slice is
    about to be free for a waiter.
    """
    waiters: list[Waiter] = []
    servers: list[GpuServer] = []
    for obj in objs:
        entry = queue_entry(obj)
        if entry is not None:
            if entry.course_member:
                waiters.append(Waiter(entry.key, entry.slice_types, entry.enqueued_at))
            continue
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        session = running_session(obj, now)
        if session is not None:
            servers.append(GpuServer(session.key, session.slice_type, name))
            continue
        key, slice_type = entry_key(obj), requested_slice_type(obj)
        phase = (obj.get("status") or {}).get("phase")
        live = phase not in ("Succeeded", "Failed") and not is_gated(obj)
        if meta.get("deletionTimestamp") and key and slice_type and live:
            servers.append(GpuServer(key, SliceType(slice_type), name, stopping=True))
    return GpuPods(tuple(waiters), tuple(servers))


async def list_gpu_pods(core: CoreV1Api, namespace: str, now: datetime) -> GpuPods:
    """List the namespace's GPU pods (paged) and sort them into waiters and servers."""
    objs: list[Obj] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"label_selector": LABEL_SLICE_TYPE, "limit": 500}
        if token:
            kwargs["_continue"] = token
        result = await core.list_namespaced_pod(namespace, **kwargs)
        serialize = cast(Any, core).api_client.sanitize_for_serialization
        objs.extend(serialize(pod) for pod in result.items)
        token = getattr(result.metadata, "_continue", None)
        if not token:
            return gpu_pods_from_objects(objs, now)


def in_cluster_namespace(default: str = "default") -> str:
    """The namespace of the pod this runs in (service account file), else ``default``."""
    for source in (os.environ.get("POD_NAMESPACE"),):
        if source:
            return source
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or default
    except OSError:
        return default


async def kubernetes_client(kubeconfig: str | None = None) -> ApiClient:
    """An API client from KUBECONFIG/``kubeconfig`` or the pod's service account.

    A hub service does not inherit ``KUBERNETES_SERVICE_HOST``; inside a pod the API server is
    then reached through its cluster DNS name with the mounted service account token.
    """
    path = kubeconfig or os.environ.get("KUBECONFIG")
    conf = Configuration()
    if path:
        await config.load_kube_config(config_file=path, client_configuration=conf)
        return ApiClient(configuration=conf)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
        return ApiClient(configuration=conf)
    token_file = SERVICE_ACCOUNT_DIR / "token"
    if not token_file.exists():
        raise config.ConfigException(
            "no KUBECONFIG and no service account token at " + str(token_file)
        )
    conf.host = "https://kubernetes.default.svc"
    conf.ssl_ca_cert = str(SERVICE_ACCOUNT_DIR / "ca.crt")
    conf.api_key_prefix = {"BearerToken": "Bearer"}

    def reread_token(c: Configuration) -> None:  # the kubelet rotates the projected token
        c.api_key = {"BearerToken": token_file.read_text().strip()}

    reread_token(conf)
    conf.refresh_api_key_hook = reread_token
    return ApiClient(configuration=conf)
