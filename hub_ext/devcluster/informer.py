"""List + watch caches over kubernetes_asyncio for the emulator's own components.

The emulator's scheduler, kubelets, node and volume controllers keep their view the way LabHub's
controllers do, with :class:`hub_ext.adapters.k8s.informer.Informer` (list, watch from the list's
resourceVersion, resume after a dropped stream, relist after ``410 Gone``, back off while the API
server is unreachable). This module adds the plain-HTTP client and the request helper they share;
their retries are routine during fault injection, so they are logged at debug level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration

from hub_ext.adapters.k8s import informer as k8s_informer
from hub_ext.adapters.k8s.informer import Obj, read_json
from hub_ext.adapters.k8s.informer import object_key as key_of
from hub_ext.devcluster.auth.credentials import component_token

__all__ = ["Handler", "Informer", "Obj", "api_client", "key_of", "read_json", "request"]

Handler = Callable[[str, Obj], None]
ListCall = Callable[..., Awaitable[Any]]


def api_client(url: str, component: str = "controllers", node: str | None = None) -> ApiClient:
    """A kubernetes_asyncio client for the emulator's plain-HTTP API server, authenticated as
    ``component`` (``scheduler``, ``controllers``, ``volumes``) or as the kubelet of ``node``."""
    config = Configuration(host=url)
    config.verify_ssl = False
    token = component_token(url, component, node)
    if token:
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    return ApiClient(configuration=config)


async def request(call: Awaitable[Any]) -> Any:
    """Await a kubernetes_asyncio call made with ``_preload_content=False``; see read_json."""
    return await read_json(await call)


class Informer(k8s_informer.Informer):
    """An informer of an emulator component: quick retries (at most 1 s apart), quiet logs."""

    def __init__(self, list_call: ListCall, handler: Handler, name: str) -> None:
        super().__init__(list_call, handler, name, max_delay=1.0, quiet=True)
