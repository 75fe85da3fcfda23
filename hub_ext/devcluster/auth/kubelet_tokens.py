"""What the kubelet adds to a pod for talking to the API server: the ``kube-root-ca.crt``
ConfigMap of the namespace (kept for a minute, as the kubelet's TTL-based ConfigMap cache does;
the CA does not change while the cluster runs) and the ``KUBERNETES_SERVICE_*`` variables.

``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` point at the API server's HTTPS
port, whose certificate the ``ca.crt`` of the ServiceAccount volume verifies. The token itself
is requested by the kubelet with TokenRequest (:mod:`hub_ext.devcluster.kubelet.agent`).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.auth.serviceaccounts import ROOT_CA
from hub_ext.devcluster.informer import read_json

Obj = dict[str, Any]
ROOT_CA_TTL = 60.0

__all__ = ["ROOT_CA", "RootCACache", "service_env"]


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


def service_env(secure_url: str) -> dict[str, str]:
    """The variables a kubelet sets for the ``kubernetes`` Service (the API server)."""
    if not secure_url:
        return {}
    parts = urlsplit(secure_url)
    host, port = parts.hostname or "127.0.0.1", str(parts.port or 443)
    address = f"tcp://{host}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": address,
        "KUBERNETES_PORT_443_TCP": address,
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": port,
        "KUBERNETES_PORT_443_TCP_ADDR": host,
    }
