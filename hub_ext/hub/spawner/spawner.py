"""LabKubeSpawner: one student's lab server with a course image, a GPU slice and a home volume.

The spawner is KubeSpawner with LabHub's parts added through its public surface:

* the choice is a course profile from the profile loader, filtered by the user's JupyterHub
  groups, validated as untrusted input in ``apply_user_options``;
* the pod is KubeSpawner's own manifest (``get_pod_manifest``: ``make_pod`` with all its
  settings) with LabHub's parts applied by :func:`hub_ext.core.manifests.lab_pod`: the profile's
  resources and volumes, the GPU request and the scheduling gate, ``NVIDIA_VISIBLE_DEVICES=void``
  for CPU-only servers, course labels and the security floor (:mod:`hub_ext.core.pod_floors`);
  a setting that would loosen the floor is refused when the spawner is configured;
* a GPU pod waits in the slice admission queue (with its own ``queue_timeout``) before the usual
  ``start_timeout`` applies; ``progress()`` shows the live queue position.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Any as AnyTrait
from traitlets import Dict, Enum, Int, Unicode, default
from traitlets.config import Config

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.adapters.k8s.admission import (
    ANNOTATION_DETACHED,
    ANNOTATION_ENQUEUED,
    ANNOTATION_IDLE,
    ANNOTATION_MEMBER,
    ANNOTATION_RUNTIME,
    AdmissionController,
)
from hub_ext.core.admission.messages import format_admitted, format_waiting
from hub_ext.core.admission.model import Admitted, Waiting
from hub_ext.core.k8s_names import SliceStrategy
from hub_ext.core.manifests import PodRequest, PvcRequest, lab_pod, lab_pvc
from hub_ext.core.pod_floors import FloorError, setting_violations
from hub_ext.core.profiles.overrides import override_problems
from hub_ext.hub.spawner.admission import (
    admission_quotas,
    controller_for,
    existing_controller,
    stop_admission_controllers,
)
from hub_ext.hub.spawner.options import LabProfileOptions, refuse
from hub_ext.hub.spawner.rooms import RoomTraits
from hub_ext.hub.spawner.seams import set_start_future
from hub_ext.hub.spawner.start import LabStart

__all__ = [
    "FLOOR_TRAITS",
    "LabKubeSpawner",
    "check_security_floor",
    "profile_slugs",
    "stop_admission_controllers",
]

#: KubeSpawner settings that could loosen the pod security floor (checked at configuration).
FLOOR_TRAITS = (
    "privileged",
    "allow_privilege_escalation",
    "uid",
    "automount_service_account_token",
    "container_security_context",
    "pod_security_context",
    "extra_pod_config",
    "extra_container_config",
    "init_containers",
    "extra_containers",
)


def check_security_floor(config: Config | Mapping[str, Any]) -> None:
    """Refuse (FloorError naming each setting) a hub configuration whose spawner settings
    would loosen the security floor; call it at the end of ``jupyterhub_config.py``."""
    merged: dict[str, Any] = {}
    for section in ("Spawner", "KubeSpawner", "LabKubeSpawner"):
        values = config.get(section) or {}
        merged.update({k: v for k, v in dict(values).items() if k in FLOOR_TRAITS})
    problems = setting_violations({k: v for k, v in merged.items() if not callable(v)})
    if problems:
        raise FloorError(f"c.LabKubeSpawner.{p}" for p in problems)


class LabKubeSpawner(LabStart, LabProfileOptions, RoomTraits, KubeSpawner):  # type: ignore[misc]
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

    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""Where the student's home volume is mounted in the notebook container.""",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("config") is not None:
            check_security_floor(kwargs["config"])  # before KubeSpawner connects anywhere
        super().__init__(*args, **kwargs)
        values = {name: getattr(self, name) for name in FLOOR_TRAITS}
        problems = setting_violations({k: v for k, v in values.items() if not callable(v)})
        if problems:
            raise FloorError(f"c.LabKubeSpawner.{p}" for p in problems)
        if self.services_enabled:
            raise ValueError(
                "c.LabKubeSpawner.services_enabled = True is not supported: LabHub reaches "
                "each server on its pod IP and creates no per-user Service. Remove the setting."
            )

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        return ["jupyterhub-singleuser"]

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
        return LabProfileOptions._lab_options_form

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
            self.api.api_client, self.namespace, policy, self.queue_timeout, self._rooms()
        )

    def _deserialize(self, data: dict[str, Any], kind: str) -> Any:
        """A kubernetes_asyncio model (what KubeSpawner's hooks expect) from a dict."""

        class _Response:
            def __init__(self, body: dict[str, Any]) -> None:
                self.data = json.dumps(body)

        return self.api.api_client.deserialize(_Response(data), kind)

    # -- manifests ------------------------------------------------------------------------------

    def _seminar_group(self, profile: Any) -> str | None:
        mine = sorted(self.user_group_names() & set(prof.groups(profile)))
        return mine[0] if mine else None

    def get_pvc_manifest(self) -> Any:
        """KubeSpawner's home volume claim with the profile's size and LabHub's labels."""
        return self._deserialize(self.pvc_body(), "V1PersistentVolumeClaim")

    def pvc_body(self) -> dict[str, Any]:
        """The home volume's manifest as a dict (what the spawner sends)."""
        base = self.api.api_client.sanitize_for_serialization(super().get_pvc_manifest())
        profile = getattr(self, "_lab_profile", None)
        size = prof.home_size(profile) if profile is not None else 250 * 2**30
        req = PvcRequest(self.pvc_name, self.namespace, self.storage_class, size, self.user.name)
        return lab_pvc(base, req)

    async def get_pod_manifest(self) -> Any:
        """KubeSpawner's pod (all its settings) with LabHub's parts applied (see
        :func:`hub_ext.core.manifests.lab_pod`); ``modify_pod_hook`` runs on this at start."""
        return self._deserialize(await self.pod_body(), "V1Pod")

    async def pod_body(self) -> dict[str, Any]:
        """The pod's manifest as a dict: what :meth:`get_pod_manifest` returns, unparsed."""
        await self.load_user_options()
        base = await super().get_pod_manifest()
        return lab_pod(self.api.api_client.sanitize_for_serialization(base), self._pod_request())

    def _pod_request(self) -> PodRequest:
        profile = self._lab_profile
        cpu_g, cpu_l, mem_g, mem_l = prof.resources(profile)
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
        return PodRequest(
            pod_name=self.pod_name,
            namespace=self.namespace,
            username=self.user.name,
            server_name=self.name,
            course=prof.slug(profile),
            group=group,
            image=self.image,
            command=tuple(self.cmd or ()),
            port=self.port,
            home_claim=self.pvc_name,
            env=tuple(sorted(prof.env(profile).items())),
            strategy=SliceStrategy.parse(self.slice_strategy),
            gpu=prof.gpu_request(profile),
            gpu_product=self.gpu_product,
            cpu_guarantee=cpu_g,
            cpu_limit=cpu_l,
            memory_guarantee=mem_g,
            memory_limit=mem_l,
            home_mount=self.home_mount_path,
            shared_volumes=prof.shared_volumes(profile),
            annotations=tuple(sorted(notes.items())),
        )

    # -- start, queue, progress ----------------------------------------------------------------

    def start(self) -> asyncio.Future[str]:
        """Start the server (as KubeSpawner's ``start``, keeping the future that ends
        ``progress()``); the steps are :meth:`LabStart._lab_start`."""
        return set_start_future(self, asyncio.ensure_future(self._lab_start()))

    def _apply_profile_overrides(self, profile: Any) -> None:
        """Set the profile's ``kubespawner_override`` settings, after undoing those of the
        profile this spawner started before."""
        for name, value in getattr(self, "_lab_saved_traits", {}).items():
            setattr(self, name, value)
        self._lab_saved_traits: dict[str, Any] = {}
        overrides = prof.kubespawner_override(profile)
        problems = override_problems(overrides)
        if problems:
            listed = "; ".join(f"{name} {problem}" for name, problem, _ in problems)
            self.log.error(
                "profile %s: kubespawner_override refused: %s", prof.slug(profile), listed
            )
            raise refuse(
                500,
                "profile-invalid",
                f"The course profile {prof.slug(profile)} has KubeSpawner settings LabHub "
                f"refuses ({listed}). Please tell the course's lecturer.",
            )
        self._lab_saved_traits = {name: getattr(self, name) for name in overrides}
        for name, value in overrides.items():
            setattr(self, name, value)

    def _extend_start_timeout(self) -> None:
        # JupyterHub bounds the whole start by start_timeout: let it cover the queue as well,
        # and keep the configured value for the pod start after admission.
        if getattr(self, "_pod_start_timeout", None) is None:
            self._pod_start_timeout = self.start_timeout
        self.start_timeout = self._pod_start_timeout + (self.queue_timeout if self._lab_gpu else 0)

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
