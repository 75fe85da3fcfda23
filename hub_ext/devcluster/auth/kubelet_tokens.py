"""The kubelet's part of ServiceAccount tokens: a TokenRequest per projected token source."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster import projected
from hub_ext.devcluster.auth.credentials import secure_url
from hub_ext.devcluster.informer import read_json

Obj = dict[str, Any]


async def pod_tokens(core: Any, pod: Obj, lookups: Any) -> None:
    """Fill ``lookups.tokens`` (TokenRequests for the pod) and ``lookups.service_env``."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    for key, audiences, seconds in projected.token_sources(pod):
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
    url = secure_url(core.api_client.configuration.host)
    lookups.service_env.update(projected.service_env(url))
