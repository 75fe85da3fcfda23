"""LabKubeSpawner: one student's lab server with a course image, a GPU slice and a home volume.

The spawner keeps KubeSpawner's traits and machinery (reflectors, PVC and pod creation, stop,
state) and changes three things:

* the choice is a course profile from the profile loader, filtered by the user's JupyterHub
  groups, validated as untrusted input in ``apply_user_options``;
* the pod and PVC come from the pure builders in :mod:`hub_ext.core.manifests`;
* a GPU pod is created behind the ``labhub.io/slice-admission`` scheduling gate and waits in the
  slice admission queue (with its own ``queue_timeout``) before the usual ``start_timeout``
  applies; ``progress()`` shows the live queue position.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from jupyterhub.utils import exponential_backoff
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Dict, Enum, Int, Unicode, default

from hub_ext import metrics
from hub_ext.adapters import k8s_profiles as prof
from hub_ext.adapters.admission_k8s import (
    ANNOTATION_DETACHED,
    ANNOTATION_ENQUEUED,
    ANNOTATION_IDLE,
    ANNOTATION_MEMBER,
    ANNOTATION_RUNTIME,
    AdmissionController,
)
from hub_ext.adapters.admission_k8s_retry import RetryPolicy, with_retries
from hub_ext.core.admission import Admitted, Waiting
from hub_ext.core.admission_messages import format_admitted, format_waiting
from hub_ext.core.capacity import SliceType
from hub_ext.core.manifests import (
    SLICE_GATE,
    PodRequest,
    PvcRequest,
    SliceStrategy,
    build_pod,
    build_pvc,
)
from hub_ext.core.user_options import MAX_BODY_BYTES
from hub_ext.hub.hub_hooks import install_hub_hooks
from hub_ext.hub.node_lost import note_lost_node
from hub_ext.hub.spawner_admission import (
    SpawnTracker,
    admission_quotas,
    controller_for,
    existing_controller,
    stop_admission_controllers,
)
from hub_ext.hub.spawner_k8s import create_pod, create_pvc
from hub_ext.hub.spawner_options import LabProfileOptions, refuse

__all__ = ["LabKubeSpawner", "profile_slugs", "stop_admission_controllers"]


class LabKubeSpawner(LabProfileOptions, KubeSpawner):  # type: ignore[misc]
    """KubeSpawner for GPU teaching labs: course profiles, MIG slices and a fair queue."""

    node_lost: str | None = None
    """The node a stopped server ran on when that node was lost (reset by the next start)."""

    profiles_dir = Unicode(
        "",
        config=True,
        help="""Directory with one folder per course profile (profiles/<course>/profile.yaml),
        typically a git-sync checkout; it is re-read when it changes.""",
    )
    profile_policy_file = Unicode(
        "",
        config=True,
        help="""Path to the operators' global profile policy (allowed registries, maximum
        resources, allowed slice types and volumes); empty for no extra policy.""",
    )
    profile_provider = AnyTrait(
        None,
        allow_none=True,
        config=True,
        help="""Callable returning the current course profiles; when unset the profiles are read
        from profiles_dir with the LabHub profile loader.""",
    )
    slice_strategy = Enum(
        ["mixed", "single", "shared"],
        "mixed",
        config=True,
        help="""How the cluster's NVIDIA device plugin advertises GPU slices: "mixed" (one
        nvidia.com/mig-<profile> resource per MIG profile), "single" (nvidia.com/gpu on nodes
        whose product label ends in -MIG-<profile>) or "shared" (time-sliced or MPS replicas).""",
    )
    gpu_product = Unicode(
        "NVIDIA-A100-SXM4-40GB",
        config=True,
        help="""GPU Feature Discovery product name of the lab's cards, used for the node selector
        of the single MIG strategy (the selector is <product>-MIG-<slice type>).""",
    )
    queue_timeout = Int(
        1800,
        config=True,
        help="""Seconds a student may wait in the GPU slice queue before the spawn gives up
        with a clear message; counted separately from start_timeout, which starts when the
        slice is granted.""",
    )
    admission_quotas = Dict(
        config=True,
        help="""Maximum servers running at once, as {"courses": {slug: max}, "slice_types":
        {type: max}}; a course or slice type not named is unlimited.""",
    )
    reservation_claim_minutes = Int(
        10,
        config=True,
        help="""Minutes after a lab session starts during which its reserved seats are held for
        its seminar group; unclaimed seats are then released to everybody.""",
    )
    storage_class = Unicode(
        "ceph-rbd",
        config=True,
        help="""Storage class of the students' home volumes (the Ceph RBD class of the lab).""",
    )
    max_spawn_request_bytes = Int(
        MAX_BODY_BYTES,
        config=True,
        help="""Largest body, in bytes, the hub accepts for a server start or a change of a
        server's options (the REST API's /hub/api/users/{name}/server[s/{server}] and the spawn
        form); larger ones are answered with HTTP 413 and nothing is stored. A profile choice
        needs about 50 bytes.""",
    )
    storage_capacity = Unicode(
        "250Gi",
        config=True,
        help="""Size of a student's home volume when the course profile names none.""",
    )

    @default("pvc_name_template")
    def _pvc_name_template_default(self) -> str:
        return "claim-{user_server}"

    @default("storage_pvc_ensure")
    def _storage_pvc_ensure_default(self) -> bool:
        return True

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Callable[..., Any]:
        return LabProfileOptions._apply_lab_options

    @default("options_form")
    def _options_form_default(self) -> Callable[..., Any]:
        return LabProfileOptions._render_options_form

    # -- admission controller -------------------------------------------------------------------

    async def admission(self) -> AdmissionController:
        """The hub's admission controller for this namespace (started on first use)."""
        controller = existing_controller(self.namespace)
        if controller is not None:
            return controller
        quotas = admission_quotas(dict(self.admission_quotas), self.profile_policy_file)
        claim, profiles = self.reservation_claim_minutes, self.all_profiles

        def policy(now: datetime) -> Any:
            return prof.policy(profiles(), now, quotas, claim)

        return await controller_for(
            self.api.api_client, self.namespace, policy, self.queue_timeout, self._retry_policy()
        )

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            retry_timeout=float(self.k8s_api_request_retry_timeout),
            request_timeout=float(self.k8s_api_request_timeout),
        )

    def _deserialize(self, data: dict[str, Any], kind: str) -> Any:
        """A kubernetes_asyncio model (what KubeSpawner's helpers expect) from a dict."""

        class _Response:
            def __init__(self, body: dict[str, Any]) -> None:
                self.data = json.dumps(body)

        return self.api.api_client.deserialize(_Response(data), kind)

    # -- manifests ------------------------------------------------------------------------------

    def _seminar_group(self, profile: Any) -> str | None:
        mine = sorted(self.user_group_names() & set(prof.groups(profile)))
        return mine[0] if mine else None

    def get_pvc_manifest(self) -> Any:
        return self._deserialize(self._pvc_body(), "V1PersistentVolumeClaim")

    async def get_pod_manifest(self) -> Any:
        return self._deserialize(self._pod_body(), "V1Pod")

    def _pvc_body(self) -> dict[str, Any]:
        """The home volume's manifest (the spawner creates it from this dict)."""
        profile = getattr(self, "_lab_profile", None)
        size = prof.home_size(profile) if profile is not None else 250 * 2**30
        return build_pvc(
            PvcRequest(self.pvc_name, self.namespace, self.storage_class, size, self.user.name)
        )

    def _pod_body(self) -> dict[str, Any]:
        """The pod's manifest (the spawner creates the pod from this dict)."""
        profile = self._lab_profile
        cpu_g, cpu_l, mem_g, mem_l = prof.resources(profile)
        env = {**prof.env(profile), **self.get_env()}
        command = [*(self.cmd or ["jupyterhub-singleuser"]), *self.get_args()]
        group = self._seminar_group(profile)
        notes = {
            ANNOTATION_ENQUEUED: datetime.now(UTC).isoformat(),
            ANNOTATION_MEMBER: "true" if group or self.user.admin else "false",
        }
        idle = prof.limit_seconds(profile, "idle_timeout_seconds", "idle_timeout")
        runtime = prof.limit_seconds(profile, "max_runtime_seconds", "max_runtime")
        if idle:
            notes[ANNOTATION_IDLE] = str(idle)
        if runtime:
            notes[ANNOTATION_RUNTIME] = str(runtime)
        req = PodRequest(
            pod_name=self.pod_name,
            namespace=self.namespace,
            username=self.user.name,
            server_name=self.name,
            course=prof.slug(profile),
            group=group,
            image=self.image,
            command=tuple(command),
            port=self.port,
            home_claim=self.pvc_name,
            env=tuple(sorted(env.items())),
            strategy=SliceStrategy.parse(self.slice_strategy),
            gpu=prof.gpu_request(profile, self.gpu_product),
            cpu_guarantee=cpu_g,
            cpu_limit=cpu_l,
            memory_guarantee=mem_g,
            memory_limit=mem_l,
            shared_volumes=prof.shared_volumes(profile),
            node_selector=tuple(sorted(self.node_selector.items())),
            extra_labels=tuple(sorted(self._build_pod_labels({}).items())),
            annotations=tuple(sorted(notes.items())),
            working_dir=self.working_dir or None,
        )
        return build_pod(req)

    # -- start, queue, progress ----------------------------------------------------------------

    def _extend_start_timeout(self) -> None:
        # JupyterHub bounds the whole start by start_timeout: let it cover the queue as well,
        # and keep the configured value for the pod start after admission.
        if getattr(self, "_pod_start_timeout", None) is None:
            self._pod_start_timeout = self.start_timeout
        self.start_timeout = self._pod_start_timeout + (self.queue_timeout if self._lab_gpu else 0)

    async def _existing_gated_pod(self) -> dict[str, Any] | None:
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        if (
            pod
            and any(g.get("name") == SLICE_GATE for g in pod["spec"].get("schedulingGates") or [])
            and not pod["metadata"].get("deletionTimestamp")
        ):
            return pod
        return None

    async def _start(self) -> str:
        with SpawnTracker(self.namespace, self.user.name, self.name):
            return await self._start_lab()

    async def _start_lab(self) -> str:
        t0 = time.perf_counter()
        await self.load_user_options()
        await self._start_watching_pods()
        controller = await self.admission() if self._lab_gpu else None
        self.node_lost = None
        if controller is not None:
            controller.forget_failure(self.user.name, self.name)
            self._check_capacity(controller)
        # the home volume and the pod are created together: the pod waits for its claim
        steps = [self._create_pod()]
        if self.storage_pvc_ensure and not self._pvc_exists:
            steps.append(self._create_home_volume())
        await asyncio.gather(*steps)
        created = time.perf_counter()
        if controller is not None:
            await self._wait_for_slice(controller)
        admitted = time.perf_counter()
        pod = await self._wait_for_running(f"{self.namespace}/{self.pod_name}", controller)
        self.pod_id = pod["metadata"]["uid"]
        self._last_node = (pod.get("spec") or {}).get("nodeName")
        running = time.perf_counter()
        await self._wait_for_port(pod)
        self.log.info(
            "lab spawn timings for %s: pod created %.3f s, admitted %.3f s, running %.3f s, "
            "answering %.3f s",
            self._log_name,
            created - t0,
            admitted - t0,
            running - t0,
            time.perf_counter() - t0,
        )
        return self._get_pod_url(pod)

    async def _create_home_volume(self) -> None:
        await self._failing(
            "home-volume",
            exponential_backoff(
                partial(create_pvc, self, self._pvc_body(), self.k8s_api_request_timeout),
                f"Could not create the home volume {self.pvc_name}",
                timeout=self.k8s_api_request_retry_timeout,
            ),
        )
        self._pvc_exists = True

    async def _create_pod(self) -> None:
        ref_key = f"{self.namespace}/{self.pod_name}"
        queued = await self._existing_gated_pod()
        if queued is not None:
            # queued before a hub restart: take the pod back with its place in the queue
            await self._annotate(queued, {ANNOTATION_DETACHED: None})
            return
        pod = self._pod_body()
        await self._failing(
            "pod-create",
            exponential_backoff(
                partial(create_pod, self, pod, self.k8s_api_request_timeout),
                f"Could not create pod {ref_key}",
                timeout=self.k8s_api_request_retry_timeout,
            ),
        )

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
        except web.HTTPError:
            raise
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
            if self.is_pod_running(pod):
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
            failure = controller.failure(self.user.name, self.name)
            if failure is not None:
                metrics.SPAWN_FAILURES.labels("gate-patch").inc()
                await self.stop(now=True)
                raise web.HTTPError(503, failure)
            left = deadline - loop.time()
            if left <= 0:
                controller.note_exit(self.user.name, self.name, "timeout")
                await self.stop(now=True)
                minutes = max(1, round(self.queue_timeout / 60))
                raise web.HTTPError(
                    503,
                    f"No GPU slice became free within {minutes} min; you have left the queue. "
                    "Try again later or ask your lecturer about the lab's capacity.",
                )
            await controller.wait_for_change(self.user.name, self.name, min(left, 2.0))

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
        async for event in super().progress():
            yield event

    async def _annotate(self, pod: dict[str, Any], notes: dict[str, str | None]) -> None:
        name = pod["metadata"]["name"]
        await with_retries(
            partial(
                self.api.patch_namespaced_pod,
                name,
                self.namespace,
                {"metadata": {"annotations": notes}},
                _content_type="application/merge-patch+json",
                _request_timeout=self.k8s_api_request_timeout,
            ),
            f"annotating {name}",
            self._retry_policy(),
        )

    async def poll(self) -> int | None:
        """A pod still waiting for a slice after a hub restart is not a running server: report
        it stopped, but leave it queued (detached) so that Start keeps the student's place."""
        await self._start_watching_pods()
        if self._start_future is None or self._start_future.done():
            queued = await self._existing_gated_pod()
            if queued is not None:
                await self._annotate(queued, {ANNOTATION_DETACHED: datetime.now(UTC).isoformat()})
                self._detached = True
                return 0
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if node:
            self._last_node = node
        status = await super().poll()
        if status is not None and (self._start_future is None or self._start_future.done()):
            note_lost_node(self, existing_controller(self.namespace))
        return status

    async def stop(self, now: bool = False) -> None:
        if getattr(self, "_detached", False):
            self._detached = False
            return
        await super().stop(now=now)

    def get_state(self) -> dict[str, Any]:
        state = dict(super().get_state())
        profile = getattr(self, "_lab_profile", None)
        if profile is not None:
            state["lab_profile"] = prof.slug(profile)
        if self.node_lost:
            state["lab_node_lost"] = self.node_lost
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.node_lost = state.get("lab_node_lost") or None
        chosen = state.get("lab_profile")
        if chosen:
            found = [p for p in self.all_profiles() if prof.slug(p) == chosen]
            if found:
                self._lab_profile = found[0]
                self._lab_gpu = bool(prof.slice_types(found[0]))

    def clear_state(self) -> None:
        super().clear_state()
        self._lab_profile = None
        self._lab_gpu = False


def profile_slugs(profiles: Iterable[Any]) -> list[str]:
    return sorted(prof.slug(p) for p in profiles)


install_hub_hooks(LabKubeSpawner)  # when JupyterHub loads this class
