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
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Dict, Enum, Int, Unicode, default

from hub_ext.adapters import k8s_profiles as prof
from hub_ext.adapters.admission_k8s import (
    ANNOTATION_DETACHED,
    ANNOTATION_ENQUEUED,
    ANNOTATION_IDLE,
    ANNOTATION_MEMBER,
    ANNOTATION_RUNTIME,
    AdmissionController,
)
from hub_ext.core.admission import Admitted, Quotas, Waiting
from hub_ext.core.admission_messages import format_admitted, format_waiting
from hub_ext.core.manifests import (
    SLICE_GATE,
    PodRequest,
    PvcRequest,
    SliceStrategy,
    build_pod,
    build_pvc,
)
from hub_ext.hub.spawn_form import ProfileChoice, render_form

_CONTROLLERS: dict[tuple[int, str], AdmissionController] = {}
_CONTROLLER_LOCK: asyncio.Lock | None = None


def _deserialize(data: dict[str, Any], kind: str) -> Any:
    """A kubernetes_asyncio model object (what KubeSpawner's helpers expect) from a dict."""

    class _Response:
        def __init__(self, body: str) -> None:
            self.data = body

    return ApiClient().deserialize(_Response(json.dumps(data)), kind)


_SOURCES: dict[str, tuple[Any, list[float]]] = {}
PROFILE_RELOAD_SECONDS = 10.0


def _profiles_from_dir(path: str, log: Any) -> list[Any]:
    """The profiles of ``path`` from a shared ProfileSource, re-read at most every 10 s (the
    source keeps the last good version of a broken course file)."""
    from hub_ext.adapters.profile_source import ProfileSource

    entry = _SOURCES.get(path)
    if entry is None:
        entry = _SOURCES[path] = (ProfileSource(Path(path)), [0.0])
    source, last = entry
    if time.monotonic() - last[0] > PROFILE_RELOAD_SECONDS:
        last[0] = time.monotonic()
        for error in source.reload():
            log.warning("course profile not loaded: %s", error)
    return list(source.profiles.values())


async def stop_admission_controllers() -> None:
    """Stop the admission controllers this hub process started (call at hub shutdown)."""
    controllers = list(_CONTROLLERS.values())
    _CONTROLLERS.clear()
    for controller in controllers:
        await controller.stop()


class LabKubeSpawner(KubeSpawner):  # type: ignore[misc]
    """KubeSpawner for GPU teaching labs: course profiles, MIG slices and a fair queue."""

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
        return LabKubeSpawner._apply_lab_options

    # -- profiles -------------------------------------------------------------------------------

    def all_profiles(self) -> list[Any]:
        if self.profile_provider is not None:
            return list(self.profile_provider())
        if not self.profiles_dir:
            return []
        return _profiles_from_dir(self.profiles_dir, self.log)

    def user_group_names(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", []) or []}

    def allowed_profiles(self) -> list[Any]:
        profiles = self.all_profiles()
        if getattr(self.user, "admin", False):
            return profiles
        mine = self.user_group_names()
        return [p for p in profiles if mine & set(prof.groups(p))]

    # -- admission controller -------------------------------------------------------------------

    async def admission(self) -> AdmissionController:
        """The hub's admission controller for this namespace (started on first use)."""
        global _CONTROLLER_LOCK
        if _CONTROLLER_LOCK is None:
            _CONTROLLER_LOCK = asyncio.Lock()
        key = (id(asyncio.get_running_loop()), self.namespace)
        async with _CONTROLLER_LOCK:
            controller = _CONTROLLERS.get(key)
            if controller is None:
                quotas = Quotas.from_mapping(self.admission_quotas)
                claim, profiles = self.reservation_claim_minutes, self.all_profiles

                def policy(now: datetime) -> Any:
                    return prof.policy(profiles(), now, quotas, claim)

                controller = AdmissionController(self.api.api_client, self.namespace, policy)
                await controller.start()
                _CONTROLLERS[key] = controller
        return controller

    # -- form and options -----------------------------------------------------------------------

    @default("options_form")
    def _options_form_default(self) -> Callable[..., Any]:
        return LabKubeSpawner._render_options_form

    async def _render_options_form(self) -> str:
        controller = await self.admission()
        totals = controller.totals()
        now = datetime.now(UTC)
        mine = self.user_group_names()
        choices = []
        for p in self.allowed_profiles():
            types = prof.slice_types(p)
            first = types[0] if types else None
            total = totals[first].capacity if first and first in totals else 0
            group, end = prof.session_now(p, mine, now)
            choices.append(
                ProfileChoice(
                    prof.slug(p),
                    str(getattr(p, "display_name", prof.slug(p))),
                    str(getattr(p, "description", "")),
                    first,
                    controller.free(first) if first else 0,
                    total,
                    controller.queue_length(first) if first else 0,
                    f"Your {group} lab session is running until {end:%H:%M} UTC" if group else "",
                )
            )
        return render_form(choices, str(self.user_options.get("profile", "")))

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        """Only parses: the chosen profile slug (validated in apply_user_options)."""
        return {"profile": (formdata.get("profile") or [""])[0].strip()}

    def _apply_lab_options(self, user_options: dict[str, Any]) -> None:
        """Validate the untrusted choice and remember the profile to start."""
        chosen = user_options.get("profile", "")
        if not isinstance(chosen, str):
            raise web.HTTPError(400, "The profile choice must be a course profile name.")
        profiles = {prof.slug(p): p for p in self.all_profiles()}
        allowed = {prof.slug(p) for p in self.allowed_profiles()}
        if not chosen:
            if len(allowed) != 1:
                raise web.HTTPError(
                    400, f"Choose a course profile; you may use: {', '.join(sorted(allowed))}."
                )
            chosen = next(iter(allowed))
        profile = profiles.get(chosen)
        if profile is None:
            names = ", ".join(sorted(allowed)) or "none"
            raise web.HTTPError(
                400, f"There is no course profile {chosen!r}; you may use: {names}."
            )
        if chosen not in allowed:
            needed = " or ".join(prof.groups(profile)) or "a course group"
            raise web.HTTPError(
                403,
                f"You may not start {chosen}: it needs membership in {needed}. "
                "Ask the course's lecturer to add you to the seminar group.",
            )
        if prof.slice_types(profile):
            for name, other in self.user.spawners.items():
                if other is self or name == self.name:
                    continue
                if (other.active or other.ready) and getattr(other, "_lab_gpu", False):
                    raise web.HTTPError(
                        409,
                        f"You already run a GPU server ({name or 'default'}); "
                        "stop it before starting another one.",
                    )
        self._lab_profile = profile
        self._lab_gpu = bool(prof.slice_types(profile))
        self._extend_start_timeout()
        self.image = prof.image(profile, self.image)
        default_url = getattr(profile, "default_url", None)
        if default_url:
            self.default_url = str(default_url)

    async def load_user_options(self) -> None:
        if getattr(self, "_lab_profile", None) is None:
            self._apply_lab_options(self.user_options or {})

    # -- manifests ------------------------------------------------------------------------------

    def _seminar_group(self, profile: Any) -> str | None:
        mine = sorted(self.user_group_names() & set(prof.groups(profile)))
        return mine[0] if mine else None

    def get_pvc_manifest(self) -> Any:
        profile = getattr(self, "_lab_profile", None)
        size = prof.home_size(profile) if profile is not None else 250 * 2**30
        pvc = build_pvc(
            PvcRequest(self.pvc_name, self.namespace, self.storage_class, size, self.user.name)
        )
        return _deserialize(pvc, "V1PersistentVolumeClaim")

    async def get_pod_manifest(self) -> Any:
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
        return _deserialize(build_pod(req), "V1Pod")

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
        await self.load_user_options()
        await self._start_watching_pods()
        if self._lab_gpu:
            await self.admission()
        if self.storage_pvc_ensure and not self._pvc_exists:
            await exponential_backoff(
                partial(
                    self._make_create_pvc_request,
                    self.get_pvc_manifest(),
                    self.k8s_api_request_timeout,
                ),
                f"Could not create the home volume {self.pvc_name}",
                timeout=self.k8s_api_request_retry_timeout,
            )
            self._pvc_exists = True
        ref_key = f"{self.namespace}/{self.pod_name}"
        queued = await self._existing_gated_pod()
        if queued is not None:
            # queued before a hub restart: take the pod back with its place in the queue
            await self._annotate(queued, {ANNOTATION_DETACHED: None})
        else:
            pod = await self.get_pod_manifest()
            await exponential_backoff(
                partial(self._make_create_pod_request, pod, self.k8s_api_request_timeout),
                f"Could not create pod {ref_key}",
                timeout=self.k8s_api_request_retry_timeout,
            )
        if self._lab_gpu:
            await self._wait_for_slice()
        timeout = getattr(self, "_pod_start_timeout", self.start_timeout)
        await exponential_backoff(
            lambda: self.is_pod_running(self.pod_reflector.pods.get(ref_key, None)),
            f"Your server was given a GPU slice but did not start in {timeout} seconds.",
            timeout=timeout,
        )
        pod = self.pod_reflector.pods[ref_key]
        self.pod_id = pod["metadata"]["uid"]
        return self._get_pod_url(pod)

    async def _wait_for_slice(self) -> None:
        controller = await self.admission()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue_timeout
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
                await self.stop(now=True)
                minutes = max(1, round(self.queue_timeout / 60))
                raise web.HTTPError(
                    503,
                    f"No GPU slice became free within {minutes} min; you have left the queue. "
                    "Try again later or ask your lecturer about the lab's capacity.",
                )
            controller.poke()
            await controller.wait_for_update(min(left, 2.0))

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        if getattr(self, "_lab_gpu", False):
            last = ""
            while not (self._start_future and self._start_future.done()):
                controller = _CONTROLLERS.get((id(asyncio.get_running_loop()), self.namespace))
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
                    await controller.wait_for_update(2.0)
        async for event in super().progress():
            yield event

    async def _annotate(self, pod: dict[str, Any], notes: dict[str, str | None]) -> None:
        await self.api.patch_namespaced_pod(
            pod["metadata"]["name"],
            self.namespace,
            {"metadata": {"annotations": notes}},
            _content_type="application/merge-patch+json",
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
        return await super().poll()

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
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
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
