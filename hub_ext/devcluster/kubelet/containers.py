"""One container of a pod through its life: start, probes, exit, restarts with back-off.

Restarts follow the pod's ``restartPolicy`` (init containers: ``OnFailure`` unless the pod's is
``Never``; sidecars, init containers with ``restartPolicy: Always``, always). The first restart
is immediate, the next ones wait 10 s, 20 s, 40 s ... up to 5 minutes (``CrashLoopBackOff``;
the base is the cluster file's ``kubelet.crashLoopBackOffSeconds``); a container that ran 10
minutes starts again from the base. Probes: a startup probe holds back liveness and readiness;
readiness sets ``ready``; a failed liveness or startup probe kills the container, which then
restarts according to the policy. Stopping runs the ``preStop`` hook, then SIGTERM, then SIGKILL
when the grace period is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.events import now_iso
from hub_ext.devcluster.kubelet import processes as proc
from hub_ext.devcluster.kubelet.pod_status import (
    container_status,
    running_state,
    terminated_state,
    waiting_state,
)
from hub_ext.devcluster.kubelet.probes import ProbeState, probe_once

if TYPE_CHECKING:
    from hub_ext.devcluster.kubelet.pod import PodWorker

Obj = dict[str, Any]
RESET_BACKOFF_SECONDS = 600.0


def backoff_delay(restarts: int, base: float, cap: float) -> float:
    """The wait before restart number ``restarts + 1``: none, then base, 2 base, 4 base ... cap."""
    return 0.0 if restarts == 0 else float(min(base * 2 ** (restarts - 1), cap))


class ContainerRun:
    """Runs one container (and its restarts) for a :class:`PodWorker`."""

    def __init__(self, worker: PodWorker, container: Obj, *, init: bool = False) -> None:
        self.worker = worker
        self.container = container
        self.name = str(container.get("name", ""))
        self.init = init
        self.sidecar = init and container.get("restartPolicy") == "Always"
        self.restarts = 0
        self.state: Obj = waiting_state("PodInitializing" if not init else "ContainerCreating")
        self.last_state: Obj = {}
        self.ready = False
        self.started = False
        self.process: proc.PodProcess | None = None
        self.exit_code: int | None = None
        self.done = asyncio.Event()  # finished for good (no restart will follow)
        self.up = asyncio.Event()  # started (a startup probe, if any, succeeded)
        self._started_at = ""
        self._kill: str | None = None
        self.ever_started = False
        self._attempts = 0  # starts since the back-off was last reset
        self.halted = False  # stopped for good (a sidecar after the containers ended)
        self._halt = asyncio.Event()

    @property
    def policy(self) -> str:
        pod_policy = (self.worker.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if self.sidecar:
            return "Always"
        if self.init:
            return "Never" if pod_policy == "Never" else "OnFailure"
        return str(pod_policy)

    def status(self) -> Obj:
        pid = self.process.pid if self.process else None
        return container_status(
            self.container,
            self.state,
            restarts=self.restarts,
            last_state=self.last_state,
            ready=self.ready,
            started=self.started,
            pid=pid,
        )

    def _changed(self) -> None:
        self.worker.changed()

    async def run(self) -> None:
        """Start the container, and again after every exit the policy restarts."""
        w = self.worker
        try:
            while not w.deleting.is_set() and not self.halted:
                began = time.monotonic()
                code = await self._run_once()
                if w.deleting.is_set() or self.halted:
                    break
                if code is not None and (
                    self.policy == "Never" or (self.policy == "OnFailure" and code == 0)
                ):
                    break
                pulling = self.state.get("waiting", {}).get("reason") == "ErrImagePull"
                if code is None and self.policy == "Never" and not pulling:
                    break
                delay = self._backoff(time.monotonic() - began)
                if code is not None:
                    self.last_state, self.restarts = self.state, self.restarts + 1
                if delay > 0:
                    await self._back_off(delay, code is None)
        finally:
            self.ready = self.init and not self.sidecar and self.exit_code == 0
            self.done.set()
            self.up.set()
            self._changed()

    def _backoff(self, ran: float) -> float:
        cfg = self.worker.kubelet.settings.config
        if ran >= RESET_BACKOFF_SECONDS:
            self._attempts = 0
        attempts = self._attempts
        self._attempts = attempts + 1
        return backoff_delay(attempts, cfg.backoff_seconds, cfg.max_backoff_seconds)

    async def _back_off(self, delay: float, pulling: bool) -> None:
        w = self.worker
        namespace, pod = w.key
        uid = (w.pod.get("metadata") or {}).get("uid", "")
        if pulling and self.state.get("waiting", {}).get("reason") == "ErrImagePull":
            image = self.container.get("image", "")
            self.state = waiting_state("ImagePullBackOff", f'Back-off pulling image "{image}"')
            await w.event("BackOff", f'Back-off pulling image "{image}"', warning=True)
        elif not pulling:
            where = f"container={self.name} pod={pod}_{namespace}({uid})"
            message = f"back-off {delay:g}s restarting failed {where}"
            self.state = waiting_state("CrashLoopBackOff", message)
            await w.event(
                "BackOff",
                f"Back-off restarting failed container {self.name} in pod {pod}_{namespace}({uid})",
                warning=True,
            )
        self._changed()
        waits = [asyncio.ensure_future(e.wait()) for e in (w.deleting, self._halt)]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()

    async def _run_once(self) -> int | None:
        """One instance: its exit code, or None when it could not be started."""
        w = self.worker
        try:
            # visible before it starts, so that a stop during the start reaches it
            self.process = w.new_process(self.container, self.restarts > 0 or bool(self.last_state))
            try:
                await self.process.start()
            except OSError as exc:
                raise proc.ContainerConfigError("StartError", str(exc)) from exc
        except proc.ContainerConfigError as exc:
            self.state = waiting_state(exc.reason, exc.message)
            if self.policy == "Never" and exc.reason not in (
                "ErrImagePull",
                "CreateContainerConfigError",
            ):
                self.state = terminated_state(128, "", now_iso(), None, exc.reason)
                self.exit_code = 128
            self._changed()
            await w.event("Failed", f"Error: {exc.message}", warning=True)
            return None
        self._started_at = now_iso()
        self.ever_started = True
        await w.event("Started", f"Started container {self.name}")
        if not await self._post_start(self.process):
            code = await self.process.wait()
            self.state = terminated_state(
                code, self._started_at, now_iso(), self.process.pid, "PostStartHookError"
            )
            self.exit_code = code
            self._changed()
            return code
        self.state = running_state(self._started_at)
        spec = self.container
        self.started = "startupProbe" not in spec
        self.ready = (not self.init or self.sidecar) and "readinessProbe" not in spec
        if self.started:
            self.up.set()
        self._kill = None
        self._changed()
        probes = asyncio.create_task(self._probe_loops(self.process))
        try:
            code = await self._wait(self.process)
        finally:
            probes.cancel()
            await asyncio.gather(probes, return_exceptions=True)
            await self.process.close()
        self.exit_code = code
        self.started = False
        self.ready = self.init and not self.sidecar and code == 0
        reason = "Error" if code != 0 else "Completed"
        self.state = terminated_state(code, self._started_at, now_iso(), self.process.pid, reason)
        self._changed()
        return code

    async def _wait(self, process: proc.PodProcess) -> int:
        w = self.worker
        waiting = asyncio.ensure_future(process.wait())
        deleting = asyncio.ensure_future(w.deleting.wait())
        halting = asyncio.ensure_future(self._halt.wait())
        try:
            await asyncio.wait({waiting, deleting, halting}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                await self.stop(w.grace)
            return await waiting
        finally:
            deleting.cancel()
            halting.cancel()

    async def _post_start(self, process: proc.PodProcess) -> bool:
        """Run the ``postStart`` hook; a failure kills the container (False)."""
        hook = (self.container.get("lifecycle") or {}).get("postStart")
        if not hook:
            return True
        timeout = self.worker.grace_default
        ok, message = await probe_once(
            {**hook, "timeoutSeconds": timeout}, self.container, self.worker.ip, process.pid
        )
        if ok:
            return True
        await self.worker.event(
            "FailedPostStartHook", f"PostStartHook failed: {message}".strip(), warning=True
        )
        await process.stop(self.worker.grace)
        return False

    async def halt(self, grace: float) -> None:
        """Stop the container for good: no restart follows."""
        self.halted = True
        self._halt.set()
        await self.stop(grace)

    async def stop(self, grace: float) -> None:
        """preStop hook, SIGTERM, the rest of the grace period, SIGKILL."""
        process = self.process
        if process is None or process.pid is None or process.returncode is not None:
            return  # nothing runs (a process still starting is stopped once it has started)
        began = time.monotonic()
        hook = ((self.container.get("lifecycle") or {}).get("preStop")) or None
        if hook:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(grace, 0.1)):
                    ok, message = await probe_once(
                        {**hook, "timeoutSeconds": grace},
                        self.container,
                        self.worker.ip,
                        process.pid,
                    )
                    if not ok:
                        await self.worker.event(
                            "FailedPreStopHook",
                            f"PreStopHook failed: {message}".strip(),
                            warning=True,
                        )
        await process.stop(max(grace - (time.monotonic() - began), 0.0))

    async def _probe_loops(self, process: proc.PodProcess) -> None:
        spec = self.container
        if "startupProbe" in spec:
            if not await self._probe("Startup", ProbeState(spec["startupProbe"]), process):
                return
            self.started = True
            self.up.set()
            self._changed()
        loops = [
            self._probe(kind, ProbeState(spec[key]), process)
            for kind, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"))
            if key in spec and not self.init
        ]
        await asyncio.gather(*loops)

    async def _probe(self, kind: str, state: ProbeState, process: proc.PodProcess) -> bool:
        """Run one probe until the container ends; a startup probe only until it succeeds.
        False when the probe killed the container."""
        w = self.worker
        await asyncio.sleep(state.initial_delay)
        last_message = None
        while process.returncode is None:
            ok, message = await probe_once(state.probe, self.container, w.ip, process.pid)
            decided = state.record(ok)
            if not ok and message != last_message:
                await w.event("Unhealthy", f"{kind} probe failed: {message}".strip(), warning=True)
            last_message = None if ok else message
            if kind == "Readiness" and decided is not None and decided != self.ready:
                self.ready = decided
                self._changed()
            if kind == "Startup" and decided is True:
                return True
            if kind in ("Liveness", "Startup") and decided is False:
                verb = "liveness" if kind == "Liveness" else "startup"
                await w.event(
                    "Killing", f"Container {self.name} failed {verb} probe, will be restarted"
                )
                grace = float(state.probe.get("terminationGracePeriodSeconds") or w.grace_default)
                await self.stop(grace)
                return False
            await asyncio.sleep(state.period)
        return True
