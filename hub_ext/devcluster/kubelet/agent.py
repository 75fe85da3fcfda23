"""The kubelet: runs the pods bound to its node as local processes, over the HTTP API.

For each pod bound to its node it assigns a unique loopback pod IP and hands the pod to a
:class:`~hub_ext.devcluster.kubelet.pod.PodWorker`, which sets up the volumes (asking the API
server for ServiceAccount tokens with TokenRequest), runs the init containers, the sidecars and
the containers (:mod:`.containers`) and reports the status. A pod with a deletionTimestamp has
its containers stopped (preStop hook, SIGTERM, the grace period, SIGKILL) and is then removed
with ``gracePeriodSeconds=0``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.auth.credentials import secure_url
from hub_ext.devcluster.auth.kubelet_tokens import ROOT_CA, RootCACache, service_env
from hub_ext.devcluster.events import record
from hub_ext.devcluster.informer import Informer, api_client, key_of, read_json, request
from hub_ext.devcluster.kubelet import processes as proc
from hub_ext.devcluster.kubelet import runtime
from hub_ext.devcluster.kubelet.images import KubeletConfig
from hub_ext.devcluster.kubelet.pod import STOP_GRACE_SECONDS, PodWorker
from hub_ext.devcluster.kubelet.volumes import Lookups, token_sources
from hub_ext.devcluster.network.services import hosts_file
from hub_ext.devcluster.network.services import service_env as services_env

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


class IpPool:
    """Unique loopback addresses 127.<10+node>.y.z for the pods of one node."""

    def __init__(self, node_index: int) -> None:
        self._second = 10 + node_index % 240
        # a random start, so that two emulators on one host rarely hand out the same address
        self._next = random.randrange(65024)
        self._used: set[str] = set()

    def take(self) -> str:
        for _ in range(65024):
            n, self._next = self._next, (self._next + 1) % 65024
            address = f"127.{self._second}.{n // 254}.{n % 254 + 1}"
            if address not in self._used:
                self._used.add(address)
                return address
        raise RuntimeError("no free pod IP left on this node")

    def release(self, address: str) -> None:
        self._used.discard(address)


@dataclasses.dataclass(frozen=True)
class KubeletSettings:
    api_url: str
    node_name: str
    node_index: int
    state_dir: Path
    config: KubeletConfig = dataclasses.field(default_factory=KubeletConfig)


class Kubelet:
    """Runs the pods of one node."""

    def __init__(self, settings: KubeletSettings) -> None:
        self.settings = settings
        self.ips = IpPool(settings.node_index)
        self._client = api_client(settings.api_url, node=settings.node_name)
        self._root_ca = RootCACache()
        self.core = CoreV1Api(self._client)
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._informer = Informer(self._list_pods, self._on_pod, f"kubelet-{settings.node_name}")
        self._services = Informer(  # the Service variables of new containers come from it
            self.core.list_service_for_all_namespaces,
            lambda kind, obj: None,
            f"kubelet-{settings.node_name}-services",
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._removing: set[str] = set()
        self.token_errors: dict[tuple[str, str], str] = {}

    def _list_pods(self, **kwargs: Any) -> Any:
        return self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.settings.node_name}", **kwargs
        )

    async def start(self) -> None:
        """Watch the node's pods; raises :class:`~.runtime.RuntimeUnavailable` (saying what to
        do) where containers cannot get their mount namespaces."""
        await asyncio.to_thread(runtime.check)
        self._services.start()
        self._informer.start()
        await self._informer.synced.wait()
        await self._services.synced.wait()

    async def stop(self) -> None:
        """Stop every pod process (SIGTERM, a short grace, SIGKILL) and the watch."""
        await self._informer.stop()
        await self._services.stop()
        workers = list(self.workers.values())
        runs = [r for w in workers for r in w.runs]
        await asyncio.gather(*(r.halt(STOP_GRACE_SECONDS) for r in runs), return_exceptions=True)
        await asyncio.gather(
            *(r.process.close() for r in runs if r.process), return_exceptions=True
        )
        tasks = [w.task for w in workers if w.task] + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pushers = [w.pusher for w in workers if w.pusher is not None]
        for task in pushers:
            task.cancel()
        await asyncio.gather(*pushers, return_exceptions=True)
        self.workers.clear()
        await self._client.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_pod(self, kind: str, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        worker = self.workers.get(uid)
        running = worker is not None and worker.task is not None and not worker.task.done()
        if kind == "DELETED":
            if running:
                assert worker is not None
                worker.request_delete(float(meta.get("deletionGracePeriodSeconds") or 2))
            else:
                self.workers.pop(uid, None)
            return
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if running:
                assert worker is not None
                worker.request_delete(float(grace))
            elif uid not in self._removing:
                self.workers.pop(uid, None)
                self._removing.add(uid)
                self._spawn(self._remove(pod))
            return
        if worker is None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.task = asyncio.create_task(self._work(worker), name=f"pod-{meta.get('name')}")

    async def _work(self, worker: PodWorker) -> None:
        uid = str((worker.pod.get("metadata") or {}).get("uid") or "")
        try:
            await worker.run()
            if worker.deleting.is_set():
                self._removing.add(uid)
                await self._remove(worker.pod)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s failed in the kubelet", key_of(worker.pod))
        finally:
            if worker.deleting.is_set():
                shutil.rmtree(worker.sandbox, ignore_errors=True)
                if self.workers.get(uid) is worker:
                    del self.workers[uid]
            # a pod that ended on its own stays known, so that it is not started again

    async def _remove(self, pod: Obj) -> None:
        namespace, name = key_of(pod)
        uid = (pod.get("metadata") or {}).get("uid")
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        for attempt in range(50):
            try:
                await request(
                    self.core.delete_namespaced_pod(
                        name, namespace, body=body, grace_period_seconds=0, _preload_content=False
                    )
                )
                break
            except ApiException as exc:
                if exc.status in (404, 409):
                    break
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        self._removing.discard(str(uid))

    async def push_status(self, key: tuple[str, str], status: Obj) -> None:
        """Send a pod's status (merge patch), retrying transient failures."""
        namespace, name = key
        for attempt in range(60):
            try:
                await request(
                    self.core.patch_namespaced_pod_status(
                        name,
                        namespace,
                        {"status": status},
                        _content_type=MERGE,
                        _preload_content=False,
                    )
                )
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    async def lookups(self, pod: Obj) -> Lookups:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        secrets, configmaps = proc.referenced_objects(pod)
        out = Lookups()
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        for audience, seconds in token_sources(pod):
            out.tokens[(audience, seconds)] = await self._token(pod, account, audience, seconds)
            out.token_error = self.token_errors.pop((namespace, account), "")
        for name in secrets:
            out.secrets[name] = await self._get(self.core.read_namespaced_secret, name, namespace)
        for name in configmaps:
            if name == ROOT_CA:
                out.configmaps[name] = await self._root_ca.get(self.core, namespace)
                continue
            out.configmaps[name] = await self._get(
                self.core.read_namespaced_config_map, name, namespace
            )
        if (pod.get("spec") or {}).get("enableServiceLinks", True):
            out.service_env.update(
                services_env(s for (ns, _), s in self._services.cache.items() if ns == namespace)
            )
        # the API server's secure port, whatever a Service named kubernetes says
        out.service_env.update(service_env(secure_url(self._client.configuration.host or "")))
        return out

    def hosts_file(self, pod: Obj) -> str:
        """The pod's ``/etc/hosts``: itself and every Service with a cluster IP."""
        return hosts_file(self._services.cache.values(), pod)

    async def _get(self, call: Any, name: str, namespace: str) -> Obj | None:
        for attempt in range(20):
            try:
                return dict(await read_json(await call(name, namespace, _preload_content=False)))
            except ApiException as exc:
                if exc.status == 404:
                    return None
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        return None

    async def _token(self, pod: Obj, account: str, audience: str, seconds: int) -> str | None:
        """A bound ServiceAccount token, requested as the kubelet does (TokenRequest); None
        (and the reason in :attr:`token_errors`) when the API server issues none."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        spec: Obj = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta.get("name"),
                "uid": meta.get("uid"),
            },
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        try:
            resp = await request(
                self._client.call_api(
                    f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                    "POST",
                    body=body,
                    header_params={
                        "Content-Type": "application/json",
                        "Accept": "application/json",
                    },
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                )
            )
            token = str(((resp or {}).get("status") or {}).get("token") or "")
            if token:
                return token
            self.token_errors[(namespace, account)] = "the TokenRequest answer has no token"
        except ApiException as exc:
            self.token_errors[(namespace, account)] = _status_message(exc)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self.token_errors[(namespace, account)] = f"the API server cannot be reached: {exc}"
        return None

    async def event(self, pod: Obj, reason: str, message: str, warning: bool = False) -> None:
        await record(
            self.core,
            pod,
            reason,
            message,
            component=f"kubelet/{self.settings.node_name}",
            warning=warning,
        )


def _status_message(exc: ApiException) -> str:
    """The message of an API error (its Status body), e.g. a 404 before TokenRequest exists."""
    message = None
    for text in (exc.body, exc.reason):  # read_json leaves the Status body in the reason
        try:
            body = json.loads(text or "{}")
        except (TypeError, ValueError):
            continue
        message = body.get("message") if isinstance(body, dict) else None
        if message:
            break
    return f"{exc.status}: {message or exc.reason}"
