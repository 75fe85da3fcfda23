"""What LabKubeSpawner adds to the JupyterHub process it runs in, installed when the hub loads it.

JupyterHub loads its spawner class before it builds its web application and before it checks
the servers in its database. :func:`install_hub_hooks` (called when
:mod:`hub_ext.hub.spawner.spawner` is imported) wraps those steps, so that no configuration line
is needed:

* building the web application: the spawn endpoints are served by the bounded handlers of
  :mod:`hub_ext.hub.spawner.request_limits` (body and options checked before JupyterHub stores
  them);
* checking the servers in the database (``init_spawners``): once each spawner's ``poll`` has
  run (which detaches the pods still queued from before a restart), the slice admission
  controller of the spawner's namespace starts, so that the queue, the positions and the admin
  overview are there right after a restart, not only at the first spawn;
* the hub's clean-up: the controllers stop first (:func:`~hub_ext.hub.spawner.admission.
  install_shutdown_hook`).

A hub configured with another spawner class runs JupyterHub's steps unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from hub_ext.core.profiles.user_options import OptionLimits
from hub_ext.hub.spawner.admission import install_shutdown_hook
from hub_ext.hub.spawner.request_limits import SETTINGS_KEY, use_bounded_handlers

log = logging.getLogger(__name__)
_ATTR = "_labhub_hooks_installed"


def settings_spawner(app: Any, spawner_class: type) -> Any:
    """A spawner that only carries the configuration (no user's server): the namespace, the
    quotas, the profiles and the limits the hub-wide parts need."""
    user = SimpleNamespace(name="labhub-hub", id=0, url="", admin=False, groups=[], spawners={})
    return spawner_class(config=app.config, user=user, hub=getattr(app, "hub", None))


def install_hub_hooks(spawner_class: type) -> None:
    """Wrap two of JupyterHub's start-up steps (see the module docstring), once per process.

    JupyterHub imports its spawner classes while it creates its application object, before
    that object is reachable, so the steps are wrapped on the class; each wrapper does what
    JupyterHub does and, only when the hub's configured spawner is a ``spawner_class``, adds
    LabHub's part.
    """
    from jupyterhub.app import JupyterHub

    if getattr(JupyterHub, _ATTR, False):
        return
    setattr(JupyterHub, _ATTR, True)
    build_application = JupyterHub.init_tornado_application
    check_servers = JupyterHub.init_spawners

    def ours(app: Any) -> bool:
        configured = app.spawner_class
        return isinstance(configured, type) and issubclass(configured, spawner_class)

    def init_tornado_application(app: Any) -> None:
        if ours(app):
            template = _template(app)
            replaced = use_bounded_handlers(app.handlers)
            limit = int(template.max_spawn_request_bytes)
            app.tornado_settings[SETTINGS_KEY] = OptionLimits(max_body_bytes=limit)
            app.log.info(
                "LabHub: spawn requests limited to %d bytes (%d handlers)", limit, replaced
            )
            install_shutdown_hook()
        build_application(app)

    async def init_spawners(app: Any) -> None:
        await check_servers(app)
        if ours(app):
            # a reference on the app keeps the task alive until it is done
            app._labhub_admission_start = asyncio.ensure_future(_start_admission(app))

    JupyterHub.init_tornado_application = init_tornado_application
    JupyterHub.init_spawners = init_spawners


def _template(app: Any) -> Any:
    spawner = getattr(app, "_labhub_settings_spawner", None)
    if spawner is None:
        spawner = app._labhub_settings_spawner = settings_spawner(app, app.spawner_class)
    return spawner


async def _start_admission(app: Any) -> None:
    try:
        spawner = _template(app)
        if spawner.enable_user_namespaces:
            app.log.info("LabHub: one namespace per user; admission starts at each first spawn")
            return
        controller = await spawner.admission()
        app.log.info(
            "LabHub: slice admission controller for namespace %s started with the hub",
            controller.namespace,
        )
    except Exception:
        app.log.exception(
            "LabHub: the slice admission controller did not start with the hub; it starts at "
            "the next spawn (check the hub's access to the Kubernetes API)"
        )
