"""The start of a LabKubeSpawner server: create, queue for a slice, wait, answer.

:class:`LabStart` is a mixin of :class:`hub_ext.hub.spawner.spawner.LabKubeSpawner`. Its
``_lab_start`` is what ``start()`` runs, in KubeSpawner's order: options, watchers, home volume and
pod (the pod from ``get_pod_manifest()`` and ``modify_pod_hook``), ``after_pod_created_hook``, then
the wait until the pod runs. LabHub adds the capacity check, the slice queue between creation and
the wait, retries of transient API errors and, when a start fails, the removal of its pod so that
the next start begins clean."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from jupyterhub.utils import maybe_future
from tornado import web

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.adapters.k8s.admission import ANNOTATION_DETACHED, AdmissionController
from hub_ext.core.admission.model import Admitted
from hub_ext.core.capacity.model import SliceType
from hub_ext.core.manifests import SLICE_GATE
from hub_ext.core.pod_floors import floor_violations
from hub_ext.hub import metrics
from hub_ext.hub.spawner.admission import SpawnTracker
from hub_ext.hub.spawner.k8s import create_pod, create_pvc, with_retries
from hub_ext.hub.spawner.options import refuse
from hub_ext.hub.spawner.seams import pod_url, start_watching


class LabStart:
    """Start, slice queue and waits (mixed into LabKubeSpawner)."""

    api: Any
    log: Any
    namespace: str
    pod_name: str
    pvc_name: str
    user: Any
    name: str
    port: int
    pod_reflector: Any
    pod_id: Any
    queue_timeout: int
    start_timeout: int
    http_timeout: int
    k8s_api_request_timeout: int
    k8s_api_request_retry_timeout: int
    storage_pvc_ensure: bool
    modify_pod_hook: Any
    after_pod_created_hook: Any
    _pvc_exists: bool
    _lab_gpu: bool
    _lab_profile: Any

    async def _lab_start(self) -> str:
        with SpawnTracker(self.namespace, self.user.name, self.name):
            try:
                return await self._lab_start_steps()
            except Exception:
                await self._remove_failed_pod()
                raise

    async def _lab_start_steps(self) -> str:
        t0 = time.perf_counter()
        await self.load_user_options()  # type: ignore[attr-defined]
        await start_watching(self)
        controller = await self.admission() if self._lab_gpu else None  # type: ignore[attr-defined]
        if controller is not None:
            self._check_capacity(controller)
        # the home volume and the pod are created together: the pod waits for its claim
        steps = [self._create_pod()]
        if self.storage_pvc_ensure and not self._pvc_exists:
            steps.append(self._create_home_volume())
        await asyncio.gather(*steps)
        created = time.perf_counter()
        if self.after_pod_created_hook:
            pod = await self._created_pod()
            self.log.info("Executing after_pod_created_hook")
            await maybe_future(self.after_pod_created_hook(self, pod))
        if controller is not None:
            await self._wait_for_slice(controller)
        admitted = time.perf_counter()
        pod = await self._wait_for_running(f"{self.namespace}/{self.pod_name}", controller)
        self.pod_id = pod["metadata"]["uid"]
        running = time.perf_counter()
        await self._wait_for_port(pod)
        self.log.info(
            "lab spawn timings for %s: pod created %.3f s, admitted %.3f s, running %.3f s, "
            "answering %.3f s",
            self._log_name,  # type: ignore[attr-defined]
            created - t0,
            admitted - t0,
            running - t0,
            time.perf_counter() - t0,
        )
        return pod_url(self, pod)

    async def _remove_failed_pod(self) -> None:
        """After a failed start: delete its pod (queued or not), so that nothing holds a place
        in the queue and the next start begins clean."""
        key = f"{self.namespace}/{self.pod_name}"
        if self.pod_reflector is None or key not in self.pod_reflector.pods:
            return
        self.log.info("Start of %s failed: removing pod %s", self.user.name, key)
        with contextlib.suppress(Exception):
            await self.stop(now=True)  # type: ignore[attr-defined]

    async def _created_pod(self) -> dict[str, Any]:
        """The created pod as the watcher sees it (with its uid), for after_pod_created_hook."""
        key = f"{self.namespace}/{self.pod_name}"
        deadline = time.monotonic() + self.k8s_api_request_retry_timeout
        while True:
            pod = self.pod_reflector.pods.get(key)
            if pod and (pod.get("metadata") or {}).get("uid"):
                return dict(pod)
            if time.monotonic() > deadline:
                raise web.HTTPError(
                    503,
                    "Your server's pod was created but not seen by the hub within "
                    f"{self.k8s_api_request_retry_timeout} seconds; press Start again.",
                )
            await asyncio.sleep(0.05)

    async def _create_home_volume(self) -> None:
        body = self.pvc_body()  # type: ignore[attr-defined]
        await self._failing(
            "home-volume",
            with_retries(
                self,
                f"your home volume {self.pvc_name}",
                lambda: create_pvc(self, body, self.k8s_api_request_timeout),
                self.k8s_api_request_retry_timeout,
            ),
        )
        self._pvc_exists = True

    async def _final_pod_body(self) -> dict[str, Any]:
        """The pod to create: ``get_pod_manifest()``, then ``modify_pod_hook``, checked against
        the security floor."""
        if self.modify_pod_hook:
            pod = await self.get_pod_manifest()  # type: ignore[attr-defined]
            self.log.info("Pod is being modified via modify_pod_hook")
            pod = await maybe_future(self.modify_pod_hook(self, pod))
            body: dict[str, Any] = self.api.api_client.sanitize_for_serialization(pod)
        else:
            body = await self.pod_body()  # type: ignore[attr-defined]
        problems = floor_violations(body)
        if problems:
            self.log.error(
                "Refusing to create pod %s below the security floor: %s (check callable "
                "settings and modify_pod_hook)",
                self.pod_name,
                "; ".join(problems),
            )
            metrics.SPAWN_FAILURES.labels("security-floor").inc()
            raise web.HTTPError(
                500,
                "Your server cannot start: the lab's configuration would give it more rights "
                "than LabHub allows. Please tell the lab's operators (the hub's log names the "
                "setting).",
            )
        return body

    async def _create_pod(self) -> None:
        queued = await self._existing_gated_pod()
        if queued is not None:
            # queued before a hub restart: take the pod back with its place in the queue
            await self._annotate(queued, {ANNOTATION_DETACHED: None})  # type: ignore[attr-defined]
            return
        pod = await self._final_pod_body()
        await self._failing(
            "pod-create",
            with_retries(
                self,
                "your server's pod",
                lambda: create_pod(self, pod, self.k8s_api_request_timeout),
                self.k8s_api_request_retry_timeout,
            ),
        )

    async def _existing_gated_pod(self) -> dict[str, Any] | None:
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        if (
            pod
            and any(g.get("name") == SLICE_GATE for g in pod["spec"].get("schedulingGates") or [])
            and not pod["metadata"].get("deletionTimestamp")
        ):
            return dict(pod)
        return None

    async def _wait_for_port(self, pod: dict[str, Any]) -> None:
        """Wait (cheaply, every 50 ms) until the server accepts connections, so that the hub's
        own readiness check, which backs off exponentially, succeeds on its first try."""
        host = (pod.get("status") or {}).get("podIP")
        if not host:
            return
        deadline = time.monotonic() + self.http_timeout
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(1):
                    _, writer = await asyncio.open_connection(host, self.port)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def _failing(self, reason: str, step: Any) -> Any:
        """Await ``step``; count a failure in ``labhub_spawn_failures`` with ``reason``."""
        try:
            return await step
        except Exception:
            metrics.SPAWN_FAILURES.labels(reason).inc()
            raise

    def _check_capacity(self, controller: AdmissionController) -> None:
        """Refuse at once a profile whose slice types no node of the lab offers."""
        types = prof.slice_types(self._lab_profile)
        totals = controller.totals()
        if any(t in totals and totals[SliceType(t)].capacity > 0 for t in types):
            return
        offered = ", ".join(sorted(t for t, c in totals.items() if c.capacity)) or "none"
        raise refuse(
            503,
            "no-capacity",
            f"No node of this lab offers a {' or '.join(types)} GPU slice, so "
            f"{prof.slug(self._lab_profile)} cannot start; slice types offered now: {offered}. "
            "Ask the course's lecturer to choose one of them.",
        )

    async def _wait_for_running(
        self, ref_key: str, controller: AdmissionController | None
    ) -> dict[str, Any]:
        timeout = getattr(self, "_pod_start_timeout", self.start_timeout)
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod_reflector.pods.get(ref_key)
            if self.is_pod_running(pod):  # type: ignore[attr-defined]
                return dict(pod)
            if time.monotonic() > deadline:
                metrics.SPAWN_FAILURES.labels("start-timeout").inc()
                granted = "was given a GPU slice but " if controller is not None else ""
                raise web.HTTPError(
                    503,
                    f"Your server {granted}did not start in {timeout} seconds; "
                    "try again, and tell the lab's operators if it keeps happening.",
                )
            # the controller's pass follows every pod event; the reflector may lag a little
            if controller is not None and controller.running:
                await controller.wait_for_change(self.user.name, self.name, 0.25)
            else:
                await asyncio.sleep(0.1)

    async def _wait_for_slice(self, controller: AdmissionController) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue_timeout
        controller.poke()
        while True:
            status = controller.status(self.user.name, self.name)
            if isinstance(status, Admitted) or (
                status is None
                and await self._existing_gated_pod() is None
                and self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            ):
                return
            left = deadline - loop.time()
            if left <= 0:
                controller.note_exit(self.user.name, self.name, "timeout")
                await self.stop(now=True)  # type: ignore[attr-defined]
                minutes = max(1, round(self.queue_timeout / 60))
                raise web.HTTPError(
                    503,
                    f"No GPU slice became free within {minutes} min; you have left the queue. "
                    "Try again later or ask your lecturer about the lab's capacity.",
                )
            await controller.wait_for_change(self.user.name, self.name, min(left, 2.0))
