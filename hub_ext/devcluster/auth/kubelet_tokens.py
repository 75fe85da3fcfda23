"""The kubelet's part of ServiceAccount tokens: a TokenRequest per projected token source, and
the ``kube-root-ca.crt`` ConfigMap of the namespace (kept for a minute, as the kubelet's
TTL-based ConfigMap cache does; the CA does not change while the cluster runs)."""

from __future__ import annotations

import time
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster import projected
from hub_ext.devcluster.auth.credentials import secure_url
from hub_ext.devcluster.auth.serviceaccounts import ROOT_CA
from hub_ext.devcluster.informer import read_json

Obj = dict[str, Any]
ROOT_CA_TTL = 60.0


class RootCACache:
    """namespace -> (fetched at, the kube-root-ca.crt ConfigMap)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Obj]] = {}

    async def get(self, core: Any, namespace: str) -> Obj | None:
        found = self.entries.get(namespace)
        if found is not None and time.monotonic() - found[0] < ROOT_CA_TTL:
            return found[1]
        try:
            obj = dict(
                await read_json(
                    await core.read_namespaced_config_map(
                        ROOT_CA, namespace, _preload_content=False
                    )
                )
            )
        except ApiException:
            return None  # not published yet: the kubelet retries the pod's volumes
        self.entries[namespace] = (time.monotonic(), obj)
        return obj


async def pod_tokens(core: Any, pod: Obj, lookups: Any, root_ca: RootCACache) -> None:
    """Fill ``lookups.tokens`` (TokenRequests for the pod), the root CA ConfigMap when a
    projected volume reads it, and ``lookups.service_env``."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    sources = projected.token_sources(pod)
    for key, audiences, seconds in sources:
        body = projected.token_request_body(pod, audiences, seconds)
        try:
            answer = await read_json(
                await core.create_namespaced_service_account_token(
                    account, namespace, body, _preload_content=False
                )
            )
        except ApiException:
            continue  # the account is gone: the file stays absent, as a kubelet would fail
        lookups.tokens[key] = str((answer.get("status") or {}).get("token") or "")
    if ROOT_CA in projected.referenced(pod)[1]:
        found = await root_ca.get(core, namespace)
        if found is not None:
            lookups.configmaps[ROOT_CA] = found
    url = secure_url(core.api_client.configuration.host)
    lookups.service_env.update(projected.service_env(url))
