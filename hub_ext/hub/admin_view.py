"""LabHub's admin view: who holds which GPU slice, who waits, today's sessions, the MIG plan.

Two admin-only endpoints served by the hub itself (register them with
``c.JupyterHub.extra_handlers = hub_ext.hub.admin_view.handlers()``; the Helm chart does):

* ``/hub/labhub/admin`` - an HTML page in the hub's own page layout;
* ``/hub/labhub/api/overview`` - the same data as JSON.

Both need JupyterHub's ``admin-ui`` scope (admins have it); anyone else gets HTTP 403 with a
message. The data comes from the slice admission controllers running in this hub process, the
Node objects their informers cache, and the course profiles of the spawner's ``profiles_dir``.
Every value is escaped by the template engine (user and group names come from LDAP).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, Template
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from hub_ext.adapters.k8s.overview import LabOverview, build_lab_overview, to_json
from hub_ext.core.admission.overview import AdmissionOverview

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
ADMIN_SCOPE = "admin-ui"
NOT_ADMIN = (
    "the LabHub admin view is for hub administrators only; "
    "ask a lab administrator to add you to the hub's admin group"
)


def _controllers() -> list[Any]:
    """The admission controllers this hub process runs (one per user namespace)."""
    from hub_ext.hub.spawner import admission as spawner_admission

    return list(spawner_admission.running_controllers())


def _merge(parts: list[AdmissionOverview]) -> AdmissionOverview | None:
    if not parts:
        return None
    first = parts[0]
    return AdmissionOverview(
        now=first.now,
        nodes=tuple(n for p in parts for n in p.nodes),
        zones=tuple(z for p in parts for z in p.zones),
        in_flight=tuple(h for p in parts for h in p.in_flight),
        queues=tuple(q for p in parts for q in p.queues),
        reservations=tuple(r for p in parts for r in p.reservations),
        notes=tuple(n for p in parts for n in p.notes),
    )


def _profiles(config: Any) -> list[Any]:
    """The course profiles the spawner offers (empty when it reads none from a folder)."""
    from hub_ext.hub.spawner import admission as spawner_admission

    for section in ("LabKubeSpawner", "KubeSpawner"):
        spawner_config = config.get(section) or {}
        if not hasattr(spawner_config, "get"):
            continue
        folder = spawner_config.get("profiles_dir")
        policy = spawner_config.get("profile_policy_file") or ""
        if folder:
            try:
                return spawner_admission.profiles_from_dir(str(folder), str(policy))
            except Exception as e:
                log.warning("admin view: course profiles of %s not readable: %s", folder, e)
                return []
    return []


def _profile_problems() -> list[str]:
    """Errors of the last course-profile reload (shown so that no empty course list is silent)."""
    from hub_ext.hub.spawner import admission as spawner_admission

    return spawner_admission.profile_problems()


def collect_overview(config: Any, now: datetime | None = None) -> LabOverview:
    """The lab overview from this hub process's controllers and the spawner's profiles."""
    now = now or datetime.now(UTC)
    controllers = _controllers()
    nodes: list[Any] = []
    for controller in controllers:
        nodes.extend(controller.node_objects())
    admission = _merge([c.overview(now) for c in controllers])
    return build_lab_overview(now, admission, nodes, _profiles(config))


class LabTemplates:
    """Templates from hub_ext/hub/templates first, then the hub's own (for page.html); mixed
    into a JupyterHub handler."""

    settings: dict[str, Any]

    def get_template(self, name: str, sync: bool = False) -> Template:
        key = "labhub_jinja2_env_sync" if sync else "labhub_jinja2_env"
        env = self.settings.get(key)
        if env is None:
            base: Environment = self.settings["jinja2_env_sync" if sync else "jinja2_env"]
            loaders: list[BaseLoader] = [FileSystemLoader(str(TEMPLATES))]
            if base.loader is not None:
                loaders.append(base.loader)
            env = base.overlay(loader=ChoiceLoader(loaders))
            self.settings[key] = env
        template: Template = env.get_template(name)
        return template


class _AdminBase(LabTemplates, BaseHandler):  # type: ignore[misc]
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A 403 names what is missing, on the API as JSON and on the page as the hub's error."""
        if status_code == 403 and self.request.path.endswith("/api/overview"):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": 403, "message": NOT_ADMIN}))
            return
        super().write_error(status_code, **kwargs)

    def _require_admin(self) -> None:
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "log in to the hub first")
        if not getattr(user, "admin", False) and ADMIN_SCOPE not in self.expanded_scopes:
            raise web.HTTPError(403, NOT_ADMIN)


class AdminPageHandler(_AdminBase):
    """``/hub/labhub/admin``: the overview as a page."""

    @web.authenticated
    async def get(self) -> None:
        self._require_admin()
        overview = collect_overview(self.config)
        html = await self.render_template(
            "labhub-admin.html",
            overview=overview,
            profile_problems=_profile_problems(),
            generated=overview.now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        self.finish(html)


class OverviewApiHandler(_AdminBase):
    """``/hub/labhub/api/overview``: the overview as JSON (hub cookie or API token)."""

    _accept_token_auth = True

    def check_xsrf_cookie(self) -> None:
        """GET only; token-authenticated clients need no XSRF cookie."""

    @needs_scope(ADMIN_SCOPE)  # type: ignore[untyped-decorator]
    async def get(self) -> None:
        overview = collect_overview(self.config)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        data = to_json(overview)
        data["profileProblems"] = _profile_problems()
        self.finish(json.dumps(data))


def handlers() -> list[tuple[str, type[BaseHandler]]]:
    """(pattern, handler) pairs for ``c.JupyterHub.extra_handlers`` (the hub adds /hub/)."""
    return [
        (r"/labhub/admin/?", AdminPageHandler),
        (r"/labhub/api/overview", OverviewApiHandler),
    ]
