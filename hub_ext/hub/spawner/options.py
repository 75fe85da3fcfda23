"""Course profiles for LabKubeSpawner: which ones a student may use, the form, the choice.

:class:`LabProfileOptions` is a mixin of :class:`hub_ext.hub.spawner.spawner.LabKubeSpawner` (which
declares the traits it reads: ``profile_provider``, ``profiles_dir``, ``profile_policy_file``).
The student's choice is untrusted input: ``_apply_lab_options`` accepts only a profile of the
student's own courses and answers anything else with an error that says what to do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tornado import web

from hub_ext.adapters.k8s import profiles as prof
from hub_ext.hub import metrics
from hub_ext.hub.spawner.admission import profiles_from_dir
from hub_ext.hub.spawner.form import ProfileChoice, render_form


def refuse(status: int, reason: str, message: str) -> web.HTTPError:
    """An HTTP error for the student, counted in ``labhub_refusals``."""
    metrics.REFUSALS.labels(reason).inc()
    return web.HTTPError(status, message)


class LabProfileOptions:
    """Profiles, spawn form and option validation (mixed into LabKubeSpawner)."""

    profile_provider: Any
    profiles_dir: str
    profile_policy_file: str
    user: Any
    user_options: Any
    log: Any

    # -- profiles -------------------------------------------------------------------------------

    def all_profiles(self) -> list[Any]:
        if self.profile_provider is not None:
            return list(self.profile_provider())
        if not self.profiles_dir:
            return []
        return profiles_from_dir(self.profiles_dir, self.profile_policy_file)

    def user_group_names(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", []) or []}

    def allowed_profiles(self) -> list[Any]:
        profiles = self.all_profiles()
        if getattr(self.user, "admin", False):
            return profiles
        mine = self.user_group_names()
        return [p for p in profiles if mine & set(prof.groups(p))]

    # -- form and options -----------------------------------------------------------------------

    async def _lab_options_form(self) -> str:
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
            raise refuse(
                400, "invalid-options", "The profile choice must be a course profile name."
            )
        profiles = {prof.slug(p): p for p in self.all_profiles()}
        allowed = {prof.slug(p) for p in self.allowed_profiles()}
        if not chosen:
            if len(allowed) != 1:
                raise refuse(
                    400,
                    "invalid-options",
                    "Choose a course profile; you may use: "
                    f"{', '.join(sorted(allowed)) or 'none'}.",
                )
            chosen = next(iter(allowed))
        profile = profiles.get(chosen)
        if profile is None:
            names = ", ".join(sorted(allowed)) or "none"
            raise refuse(
                400,
                "invalid-options",
                f"There is no course profile {chosen!r}; you may use: {names}.",
            )
        if chosen not in allowed:
            needed = " or ".join(prof.groups(profile)) or "a course group"
            raise refuse(
                403,
                "not-allowed",
                f"You may not start {chosen}: it needs membership in {needed}. "
                "Ask the course's lecturer to add you to the seminar group.",
            )
        if prof.slice_types(profile):
            for name, other in self.user.spawners.items():
                if other is self or name == self.name:
                    continue
                if (other.active or other.ready) and getattr(other, "_lab_gpu", False):
                    raise refuse(
                        409,
                        "quota",
                        f"You already run a GPU server ({name or 'default'}); "
                        "stop it before starting another one.",
                    )
        self._lab_profile = profile
        self._lab_gpu = bool(prof.slice_types(profile))
        self._apply_profile_overrides(profile)
        self._extend_start_timeout()
        self.image = prof.image(profile, self.image)
        default_url = getattr(profile, "default_url", None)
        if default_url:
            self.default_url = str(default_url)

    async def load_user_options(self) -> None:
        if getattr(self, "_lab_profile", None) is None:
            self._apply_lab_options(self.user_options or {})
