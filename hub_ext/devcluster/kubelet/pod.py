"""One pod on its node: volumes, init containers and sidecars, containers, status.

The pod's status (phase, conditions, containerStatuses, initContainerStatuses, podIP, hostIP,
startTime) is sent whenever something changes, the latest state only. ``Ready`` and
``ContainersReady`` are true while the pod runs and every container (and sidecar) is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.api_logs import pod_log_path
from hub_ext.devcluster.events import now_iso
from hub_ext.devcluster.informer import key_of
from hub_ext.devcluster.kubelet import processes as proc
from hub_ext.devcluster.kubelet import runtime
from hub_ext.devcluster.kubelet.containers import ContainerRun
from hub_ext.devcluster.kubelet.pod_status import qos_class, waiting_state
from hub_ext.devcluster.kubelet.volumes import (
    Lookups,
    VolumeError,
    container_mounts,
    prepare_volumes,
)

if TYPE_CHECKING:
    from hub_ext.devcluster.kubelet.agent import Kubelet

Obj = dict[str, Any]
STOP_GRACE_SECONDS = 3.0  # when the whole emulator stops


class PodWorker:
    """Runs one pod from start to removal: volumes, init containers, containers, status."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.key = key_of(pod)
        self.deleting = asyncio.Event()
        spec = pod.get("spec") or {}
        self.grace_default = float(spec.get("terminationGracePeriodSeconds", 30))
        self.grace = self.grace_default
        self.status: Obj = {}
        uid = str((pod.get("metadata") or {}).get("uid") or "nouid")
        namespace, name = self.key
        self.sandbox = kubelet.settings.state_dir / "pods" / namespace / f"{name}-{uid[:8]}"
        self.task: asyncio.Task[None] | None = None
        self.ip = ""
        self.lookups = Lookups()
        self.volumes: dict[str, Path] = {}
        self.inits = [ContainerRun(self, c, init=True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerRun(self, c) for c in spec.get("containers") or []]
        self.initialized = not any(not r.sidecar for r in self.inits)
        self.phase = "Pending"
        self._dirty = asyncio.Event()
        self.pusher: asyncio.Task[None] | None = None
        self.run_tasks: list[asyncio.Task[None]] = []

    @property
    def runs(self) -> list[ContainerRun]:
        return [*self.inits, *self.mains]

    def request_delete(self, grace: float) -> None:
        self.grace = min(self.grace, grace) if self.deleting.is_set() else grace
        self.deleting.set()

    async def run(self) -> None:
        k = self.kubelet
        self.ip = k.ips.take()
        self.pusher = asyncio.create_task(self._push_loop())
        try:
            await self._run()
        finally:
            await asyncio.gather(
                *(r.halt(STOP_GRACE_SECONDS) for r in self.runs), return_exceptions=True
            )
            for task in self.run_tasks:
                task.cancel()
            await asyncio.gather(*self.run_tasks, return_exceptions=True)
            await self._flush()
            k.ips.release(self.ip)

    async def _run(self) -> None:
        pod = self.pod
        self.pod = pod = {**pod, "status": {**(pod.get("status") or {}), "podIP": self.ip}}
        self.status = {
            "hostIP": "127.0.0.1",
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": now_iso(),
            "qosClass": qos_class(pod),
        }
        for run in self.mains:
            run.state = waiting_state("PodInitializing" if self.inits else "ContainerCreating")
        self.changed()
        if not await self._prepare():
            self.phase = "Failed" if not self.deleting.is_set() else self.phase
            return
        namespace, name = self.key
        shutil.rmtree(pod_log_path(k_state(self), namespace, name, "").parent, ignore_errors=True)
        sidecars: list[asyncio.Task[None]] = []
        for run in self.inits:
            task = asyncio.create_task(run.run())
            self.run_tasks.append(task)
            if run.sidecar:
                sidecars.append(task)
                await _first(run.up.wait(), self.deleting.wait())
                continue
            await _first(task, self.deleting.wait())
            await task
            if self.deleting.is_set():
                return
            if run.exit_code != 0:
                self.phase = "Failed"
                for main in self.mains:
                    main.state = waiting_state("PodInitializing")
                self.changed()
                await self._stop_all(sidecars)
                return
        self.initialized = True
        self.phase = "Running"
        self.changed()
        mains = [asyncio.create_task(r.run()) for r in self.mains]
        self.run_tasks += mains
        await asyncio.gather(*mains, return_exceptions=True)
        await self._stop_all(sidecars)
        codes = [r.exit_code for r in self.mains]
        if not self.deleting.is_set():
            self.phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
        self.changed()

    async def _stop_all(self, sidecars: list[asyncio.Task[None]]) -> None:
        """Sidecars stop after the main containers, in reverse order."""
        for run in reversed([r for r in self.inits if r.sidecar]):
            await run.halt(self.grace)
        await asyncio.gather(*sidecars, return_exceptions=True)

    async def _prepare(self) -> bool:
        """Fetch secrets, config maps and tokens and set up the volumes; waits (like kubelet)
        while one is missing, reporting why in an event."""
        reported = ""
        k = self.kubelet
        while not self.deleting.is_set():
            self.lookups = await k.lookups(self.pod)
            try:
                self.volumes = prepare_volumes(
                    self.pod,
                    self.sandbox,
                    k.settings.state_dir / "volumes",
                    self.lookups,
                    k.settings.config,
                )
                for run in self.runs:
                    proc.container_env(self.pod, run.container, self.lookups)
                return True
            except VolumeError as exc:
                message, reason, event = exc.message, "ContainerCreating", "FailedMount"
            except proc.ContainerConfigError as exc:
                message, reason, event = exc.message, exc.reason, "Failed"
            for run in self.runs:
                run.state = waiting_state(reason, "" if event == "FailedMount" else message)
            if message != reported:
                reported = message
                self.changed()
                await self.event(
                    event, message if event == "FailedMount" else f"Error: {message}", warning=True
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.deleting.wait()
        return False

    def new_process(self, container: Obj, rotate: bool) -> proc.PodProcess:
        """One instance of ``container``, not started yet (the previous one's log becomes
        ``previous``); raises :class:`~.processes.ContainerConfigError`."""
        k = self.kubelet
        env = proc.container_env(self.pod, container, self.lookups)
        mounts = container_mounts(container, self.volumes)
        if not (self.pod.get("spec") or {}).get("hostNetwork"):
            mounts = runtime.hosts_mount(self.sandbox, k.hosts_file(self.pod), mounts)
        spec = proc.launch_spec(
            self.pod,
            container,
            env,
            mounts,
            proc.PodPaths(self.sandbox, k.settings.state_dir / "volumes"),
            k.settings.config,
        )
        namespace, name = self.key
        cname = str(container.get("name", ""))
        log_path = pod_log_path(k.settings.state_dir, namespace, name, cname)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if rotate and log_path.exists():
            log_path.replace(pod_log_path(k.settings.state_dir, namespace, name, cname, True))
        spec = dataclasses.replace(spec, log_path=log_path)
        return proc.PodProcess(spec, self.sandbox / "init" / cname)

    def changed(self) -> None:
        self._dirty.set()

    def _snapshot(self) -> Obj:
        mains_ready = bool(self.mains) and all(r.ready for r in self.mains)
        sidecars_ready = all(r.ready or r.done.is_set() for r in self.inits if r.sidecar)
        ready = self.phase == "Running" and mains_ready and sidecars_ready
        stamp = now_iso()
        previous = {c["type"]: c for c in self.status.get("conditions") or []}

        def cond(kind: str, ok: bool) -> Obj:
            value = "True" if ok else "False"
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old["status"] == value else stamp
            return {"type": kind, "status": value, "lastTransitionTime": since}

        started = any(r.ever_started for r in self.mains)
        self.status["phase"] = "Pending" if self.phase == "Running" and not started else self.phase
        self.status["conditions"] = [
            cond("PodReadyToStartContainers", True),
            cond("Initialized", self.initialized),
            cond("Ready", ready),
            cond("ContainersReady", ready),
            cond("PodScheduled", True),
        ]
        self.status["containerStatuses"] = [r.status() for r in self.mains]
        if self.inits:
            self.status["initContainerStatuses"] = [r.status() for r in self.inits]
        return self.status

    async def _push_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self.kubelet.push_status(self.key, self._snapshot())

    async def _flush(self) -> None:
        """Send the last status, then end the status pusher."""
        if self.pusher is not None:
            self.pusher.cancel()
            await asyncio.gather(self.pusher, return_exceptions=True)
        await self.kubelet.push_status(self.key, self._snapshot())

    async def event(self, reason: str, message: str, warning: bool = False) -> None:
        await self.kubelet.event(self.pod, reason, message, warning)


def k_state(worker: PodWorker) -> Path:
    return worker.kubelet.settings.state_dir


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` is done (the others are cancelled, tasks kept)."""
    futures = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future, original in zip(futures, aws, strict=True):
            if future is not original and not future.done():
                future.cancel()
