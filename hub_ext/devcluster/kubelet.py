"""The kubelet: runs the pods bound to its node as local processes, over the HTTP API.

For each pod bound to its node it assigns a unique loopback pod IP, resolves the environment
and volumes (:mod:`hub_ext.devcluster.processes`), runs init containers one after another and
then the containers, and reports ``status`` (phase, conditions, containerStatuses, podIP,
hostIP, startTime). A process that exits ends the pod: ``Succeeded`` when every container
exited 0, else ``Failed`` (containers are not restarted). A pod with a deletionTimestamp gets
SIGTERM, the grace period, SIGKILL, and is then removed with ``gracePeriodSeconds=0``. Every
status write names the pod's uid, as the real kubelet's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster import processes as proc
from hub_ext.devcluster.apiserver import pod_log_path
from hub_ext.devcluster.events import now_iso, record
from hub_ext.devcluster.informer import Informer, api_client, key_of, read_json, request
from hub_ext.devcluster.pod_status import qos_class, running, terminated, waiting

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
STOP_GRACE_SECONDS = 3.0  # when the whole emulator stops


def default_log_path(state_dir: Path, namespace: str, name: str, container: str) -> Path:
    """Where the container log goes: the file the API server serves ``pods/log`` from (one
    file per pod; the output of all its containers is appended to it)."""
    del container
    return Path(pod_log_path(state_dir, namespace, name))


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
    log_path: Callable[[Path, str, str, str], Path] = default_log_path


class _PodWorker:
    """Runs one pod from start to removal."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.deleting = asyncio.Event()
        self.grace = 30.0
        self.procs: dict[str, proc.PodProcess] = {}
        self.status: Obj = {}
        uid = str((pod.get("metadata") or {}).get("uid") or "nouid")
        namespace, name = key_of(pod)
        self.sandbox = kubelet.settings.state_dir / "pods" / namespace / f"{name}-{uid[:8]}"
        self.task: asyncio.Task[None] | None = None
        self.ip = ""

    def request_delete(self, grace: float) -> None:
        self.grace = min(self.grace, grace) if self.deleting.is_set() else grace
        self.deleting.set()

    async def run(self) -> None:
        k = self.kubelet
        self.ip = k.ips.take()
        try:
            await self._run()
        finally:
            await self._stop_processes(STOP_GRACE_SECONDS)
            k.ips.release(self.ip)

    async def _run(self) -> None:
        k, pod = self.kubelet, self.pod
        spec = pod.get("spec") or {}
        self.pod = pod = {**pod, "status": {**(pod.get("status") or {}), "podIP": self.ip}}
        self.status = {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": now_iso(),
            "qosClass": qos_class(pod),
        }
        containers = spec.get("containers") or []
        self._set_conditions(initialized=not spec.get("initContainers"), ready=False)
        self.status["containerStatuses"] = [waiting(c, "ContainerCreating", "") for c in containers]
        await k.push_status(self)
        lookups = await self._prepare()
        if lookups is None:
            return
        volumes = proc.prepare_volumes(pod, self._paths(), lookups)
        namespace, name = key_of(pod)
        log_file = k.settings.log_path(k.settings.state_dir, namespace, name, "")
        log_file.unlink(missing_ok=True)  # a new pod of the same name starts a new log
        for container in spec.get("initContainers") or []:
            code = await self._run_init(container, lookups, volumes)
            if code is None:
                return
            if code != 0:
                await self._finish({container.get("name", ""): code}, init_failed=True)
                return
        self._set_conditions(initialized=True, ready=False)
        started: dict[str, str] = {}
        failed: dict[str, int] = {}
        for container in containers:
            try:
                await self._start(container, lookups, volumes)
                started[container["name"]] = now_iso()
            except proc.ContainerConfigError as exc:
                await k.event(pod, "Failed", f"Error: {exc.message}", warning=True)
                failed[container.get("name", "")] = 128
        if failed and not started:
            await self._finish(failed)
            return
        self.status["phase"] = "Running"
        self._set_conditions(initialized=True, ready=True)
        self.status["containerStatuses"] = [
            running(c, started[c["name"]], self.procs[c["name"]].pid)
            for c in containers
            if c.get("name") in started
        ]
        await k.push_status(self)
        for name in started:
            await k.event(pod, "Started", f"Started container {name}")
        codes = await self._wait_or_delete()
        await self._finish({**failed, **codes})

    def _paths(self) -> proc.PodPaths:
        return proc.PodPaths(self.sandbox, self.kubelet.settings.state_dir / "volumes")

    async def _prepare(self) -> proc.Lookups | None:
        """Fetch the secrets and config maps; waits (like kubelet) while one is missing."""
        reported = ""
        while not self.deleting.is_set():
            lookups = await self.kubelet.lookups(self.pod)
            try:
                for container in self.pod["spec"].get("containers") or []:
                    proc.container_env(self.pod, container, lookups)
                return lookups
            except proc.ContainerConfigError as exc:
                self.status["containerStatuses"] = [
                    waiting(c, exc.reason, exc.message) for c in self.pod["spec"]["containers"]
                ]
                if exc.message != reported:
                    reported = exc.message
                    await self.kubelet.push_status(self)
                    await self.kubelet.event(
                        self.pod, "Failed", f"Error: {exc.message}", warning=True
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await self.deleting.wait()
        await self._finish({})
        return None

    async def _start(self, container: Obj, lookups: proc.Lookups, volumes: dict[str, Path]) -> None:
        env = proc.container_env(self.pod, container, lookups)
        spec = proc.launch_spec(self.pod, container, env, volumes, self._paths())
        namespace, name = key_of(self.pod)
        log_path = self.kubelet.settings.log_path(
            self.kubelet.settings.state_dir, namespace, name, container.get("name", "")
        )
        spec = dataclasses.replace(spec, log_path=log_path)
        process = proc.PodProcess(spec)
        try:
            await process.start()
        except OSError as exc:
            raise proc.ContainerConfigError("StartError", str(exc)) from exc
        self.procs[container["name"]] = process

    async def _run_init(
        self, container: Obj, lookups: proc.Lookups, volumes: dict[str, Path]
    ) -> int | None:
        try:
            await self._start(container, lookups, volumes)
        except proc.ContainerConfigError as exc:
            await self.kubelet.event(self.pod, "Failed", f"Error: {exc.message}", warning=True)
            return 128
        codes = await self._wait_or_delete([container["name"]])
        self.procs.pop(container["name"], None)
        if self.deleting.is_set():
            await self._finish(codes)
            return None
        return codes.get(container["name"], 1)

    async def _wait_or_delete(self, names: list[str] | None = None) -> dict[str, int]:
        chosen = {n: p for n, p in self.procs.items() if names is None or n in names}
        waits = {asyncio.ensure_future(p.wait()): n for n, p in chosen.items()}
        deleting = asyncio.ensure_future(self.deleting.wait())
        try:
            pending = set(waits)
            while pending:
                done, _ = await asyncio.wait(
                    pending | {deleting}, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
                if deleting in done:
                    codes = await asyncio.gather(
                        *(
                            chosen[n].stop(self.grace)
                            for n in chosen
                            if chosen[n].returncode is None
                        )
                    )
                    del codes
                    break
            await asyncio.gather(*waits, return_exceptions=True)
            return {waits[t]: t.result() for t in waits if not t.cancelled()}
        finally:
            deleting.cancel()
            for task in waits:
                task.cancel()
            await asyncio.gather(deleting, *waits, return_exceptions=True)

    async def _stop_processes(self, grace: float) -> None:
        await asyncio.gather(
            *(p.stop(grace) for p in self.procs.values() if p.pid), return_exceptions=True
        )

    def _set_conditions(self, *, initialized: bool, ready: bool) -> None:
        stamp = now_iso()

        def cond(kind: str, ok: bool) -> Obj:
            return {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": stamp}

        self.status["conditions"] = [
            cond("PodReadyToStartContainers", True),
            cond("Initialized", initialized),
            cond("Ready", ready),
            cond("ContainersReady", ready),
            cond("PodScheduled", True),
        ]

    async def _finish(self, codes: dict[str, int], init_failed: bool = False) -> None:
        containers = self.pod["spec"].get("containers") or []
        finished = now_iso()
        statuses = []
        for c in containers:
            name = c.get("name", "")
            code = codes.get(name)
            if code is None and init_failed:
                statuses.append(waiting(c, "PodInitializing", ""))
                continue
            code = 137 if code is None else code
            process = self.procs.get(name)
            statuses.append(terminated(c, code, finished, process.pid if process else None))
        ok = bool(codes) and not init_failed and all(v == 0 for v in codes.values())
        self.status["phase"] = "Succeeded" if ok else "Failed"
        self._set_conditions(initialized=not init_failed, ready=False)
        self.status["containerStatuses"] = statuses
        await self.kubelet.push_status(self)


class Kubelet:
    """Runs the pods of one node."""

    def __init__(self, settings: KubeletSettings) -> None:
        self.settings = settings
        self.ips = IpPool(settings.node_index)
        self._client = api_client(settings.api_url)
        self.core = CoreV1Api(self._client)
        self.workers: dict[str, _PodWorker] = {}  # by pod uid
        self._informer = Informer(self._list_pods, self._on_pod, f"kubelet-{settings.node_name}")
        self._tasks: set[asyncio.Task[None]] = set()
        self._removing: set[str] = set()

    def _list_pods(self, **kwargs: Any) -> Any:
        return self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.settings.node_name}", **kwargs
        )

    async def start(self) -> None:
        self._informer.start()
        await self._informer.synced.wait()

    async def stop(self) -> None:
        """Stop every pod process (SIGTERM, a short grace, SIGKILL) and the watch."""
        await self._informer.stop()
        workers = list(self.workers.values())
        await asyncio.gather(*(w._stop_processes(STOP_GRACE_SECONDS) for w in workers))
        tasks = [w.task for w in workers if w.task] + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
            worker = _PodWorker(self, pod)
            self.workers[uid] = worker
            worker.task = asyncio.create_task(self._work(worker), name=f"pod-{meta.get('name')}")

    async def _work(self, worker: _PodWorker) -> None:
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

    async def push_status(self, worker: _PodWorker) -> None:
        """Send the worker's status (merge patch), retrying transient failures. The patch
        carries the pod's uid, so that it never lands on a new pod of the same name (409)."""
        namespace, name = key_of(worker.pod)
        body = {"metadata": {"uid": worker.pod["metadata"]["uid"]}, "status": worker.status}
        for attempt in range(60):
            try:
                await request(
                    self.core.patch_namespaced_pod_status(
                        name,
                        namespace,
                        body,
                        _content_type=MERGE,
                        _preload_content=False,
                    )
                )
                return
            except ApiException as exc:
                if exc.status in (404, 409):
                    return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    async def lookups(self, pod: Obj) -> proc.Lookups:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        secrets, configmaps = proc.referenced_objects(pod)
        out = proc.Lookups()
        for name in secrets:
            out.secrets[name] = await self._get(self.core.read_namespaced_secret, name, namespace)
        for name in configmaps:
            out.configmaps[name] = await self._get(
                self.core.read_namespaced_config_map, name, namespace
            )
        return out

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

    async def event(self, pod: Obj, reason: str, message: str, warning: bool = False) -> None:
        await record(
            self.core,
            pod,
            reason,
            message,
            component=f"kubelet/{self.settings.node_name}",
            warning=warning,
        )
