"""A LabKubeSpawner server's queue progress, poll and saved state.

:class:`LabServerState` is a mixin of :class:`hub_ext.hub.spawner.spawner.LabKubeSpawner`:

* ``progress()`` shows the live queue position while a GPU server waits for its slice;
* ``poll()`` reports a pod still queued after a hub restart as stopped but leaves it queued
  (detached, so that Start keeps the student's place), and remembers the node a server ran on,
  so that a server stopped by a lost node gets the node-lost message
  (:mod:`hub_ext.hub.spawner.node_lost`);
* the chosen profile and the lost node are kept in the spawner's state in the hub database
  (JupyterHub replaces a stopped server's spawner object).

Annotations are retried on transient API errors for up to ``k8s_api_request_retry_timeout``
(:func:`hub_ext.adapters.k8s.retry.with_retries`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.adapters.k8s.admission import ANNOTATION_DETACHED
from hub_ext.adapters.k8s.retry import RetryPolicy, with_retries
from hub_ext.core.admission.messages import format_admitted, format_waiting
from hub_ext.core.admission.model import Admitted, Waiting
from hub_ext.hub.spawner.admission import existing_controller
from hub_ext.hub.spawner.node_lost import note_lost_node


class LabServerState:
    """Progress, poll, stop and state of a lab server (mixed into LabKubeSpawner)."""

    node_lost: str | None = None
    """The node a stopped server ran on when that node was lost (reset by the next start)."""

    api: Any
    namespace: str
    pod_name: str
    pod_reflector: Any
    user: Any
    name: str
    k8s_api_request_timeout: int
    k8s_api_request_retry_timeout: int
    _start_future: asyncio.Future[Any] | None
    _lab_gpu: bool
    _lab_profile: Any

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            retry_timeout=float(self.k8s_api_request_retry_timeout),
            request_timeout=float(self.k8s_api_request_timeout),
        )

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        if getattr(self, "_lab_gpu", False):
            last = ""
            while not (self._start_future and self._start_future.done()):
                controller = existing_controller(self.namespace)
                status = controller.status(self.user.name, self.name) if controller else None
                if isinstance(status, Admitted):
                    yield {"progress": 40, "message": format_admitted(status)}
                    break
                if isinstance(status, Waiting):
                    message = format_waiting(status)
                    if message != last:
                        last = message
                        yield {"progress": 10, "message": message}
                if controller is None:
                    await asyncio.sleep(0.5)
                else:
                    await controller.wait_for_change(self.user.name, self.name, 2.0)
        async for event in super().progress():  # type: ignore[misc]
            yield event

    async def _annotate(self, pod: dict[str, Any], notes: dict[str, str | None]) -> None:
        name = pod["metadata"]["name"]

        async def patch() -> None:
            await self.api.patch_namespaced_pod(
                name,
                self.namespace,
                {"metadata": {"annotations": notes}},
                _content_type="application/merge-patch+json",
                _request_timeout=self.k8s_api_request_timeout,
            )

        await with_retries(patch, f"annotating {name}", self._retry_policy())

    async def poll(self) -> int | None:
        """A pod still waiting for a slice after a hub restart is not a running server: report
        it stopped, but leave it queued (detached) so that Start keeps the student's place."""
        await self._start_watching_pods()  # type: ignore[attr-defined]
        if self._start_future is None or self._start_future.done():
            queued = await self._existing_gated_pod()  # type: ignore[attr-defined]
            if queued is not None:
                await self._annotate(queued, {ANNOTATION_DETACHED: datetime.now(UTC).isoformat()})
                self._detached = True
                return 0
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if node:
            self._last_node = node
        status: int | None = await super().poll()  # type: ignore[misc]
        if status is not None and (self._start_future is None or self._start_future.done()):
            note_lost_node(self, existing_controller(self.namespace))
        return status

    async def stop(self, now: bool = False) -> None:
        if getattr(self, "_detached", False):
            self._detached = False
            return
        await super().stop(now=now)  # type: ignore[misc]

    def get_state(self) -> dict[str, Any]:
        state = dict(super().get_state())  # type: ignore[misc]
        profile = getattr(self, "_lab_profile", None)
        if profile is not None:
            state["lab_profile"] = prof.slug(profile)
        if self.node_lost:
            state["lab_node_lost"] = self.node_lost
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)  # type: ignore[misc]
        self.node_lost = state.get("lab_node_lost") or None
        chosen = state.get("lab_profile")
        if chosen:
            found = [p for p in self.all_profiles() if prof.slug(p) == chosen]  # type: ignore[attr-defined]
            if found:
                self._lab_profile = found[0]
                self._lab_gpu = bool(prof.slice_types(found[0]))

    def clear_state(self) -> None:
        super().clear_state()  # type: ignore[misc]
        self._lab_profile = None
        self._lab_gpu = False
