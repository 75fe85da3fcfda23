"""Bounded spawn requests: the hub checks a start's body and options before JupyterHub stores them.

JupyterHub saves the options of a start (``spawners.user_options`` in its database) before the
spawner sees them, and replays them on a later start without options. The REST API
(``POST``/``PUT``/``PATCH /hub/api/users/{name}/server[s/{server}]``) and the spawn form
(``POST /hub/spawn[/{name}[/{server}]]``) are therefore served by subclasses of JupyterHub's own
handlers that check, in ``prepare()`` (before any handler method runs):

* the body size, against ``LabKubeSpawner.max_spawn_request_bytes`` (HTTP 413);
* on the REST API, the options object
  (:func:`hub_ext.core.profiles.user_options.check_user_options`: known keys only, a profile
  slug of at most 63 characters; HTTP 400).

A refused request stores nothing, and its error message and log line quote at most 100
characters of the input. :func:`use_bounded_handlers` swaps the classes into the hub's handler
list (the patterns stay JupyterHub's).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.handlers.base import UserUrlHandler
from jupyterhub.handlers.pages import SpawnHandler
from tornado import web

from hub_ext.core.profiles.user_options import (
    OptionLimits,
    OptionsError,
    body_too_large,
    check_user_options,
)
from hub_ext.hub import metrics

log = logging.getLogger(__name__)
SETTINGS_KEY = "labhub_option_limits"
_WRITES = ("POST", "PUT", "PATCH")


def _refuse(error: OptionsError) -> web.HTTPError:
    metrics.REFUSALS.labels("invalid-options").inc()
    return web.HTTPError(error.status, str(error))


def _limits(handler: web.RequestHandler) -> OptionLimits:
    limits = handler.settings.get(SETTINGS_KEY)
    return limits if isinstance(limits, OptionLimits) else OptionLimits()


def _check_size(handler: web.RequestHandler) -> None:
    error = body_too_large(len(handler.request.body or b""), _limits(handler))
    if error is not None:
        raise _refuse(error)


class BoundedServerAPIHandler(UserServerAPIHandler):  # type: ignore[misc]
    """JupyterHub's server API with the body and the options checked before anything else."""

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method not in _WRITES:
            return
        _check_size(self)
        if not self.request.body or not self.request.body.strip():
            if self.request.method == "POST":
                self._drop_unusable_stored_options()
            return
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise web.HTTPError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        if self.request.method == "PATCH" or "user_options" in body or "display_name" in body:
            options = body.get("user_options")
        else:
            options = body  # JupyterHub's older form: the body is the options
        try:
            check_user_options(options)
        except OptionsError as error:
            raise _refuse(error) from None
        if self.request.method == "POST" and not options:
            self._drop_unusable_stored_options()

    def _drop_unusable_stored_options(self) -> None:
        """A start without options replays the stored ones: forget stored options that no
        start could accept (saved before these checks existed), so the start begins clean."""
        user = self.find_user(self.path_args[0]) if self.path_args else None
        server = self.path_args[1] if len(self.path_args) > 1 else ""
        if user is None:
            return
        orm_spawner = user.orm_spawners.get(server)
        if orm_spawner is None or not orm_spawner.user_options:
            return
        try:
            check_user_options(orm_spawner.user_options)
        except OptionsError as error:
            log.warning("forgetting the stored options of %s/%s: %s", user.name, server, str(error))
            orm_spawner.user_options = {}
            self.db.commit()


class BoundedSpawnHandler(SpawnHandler):  # type: ignore[misc]
    """JupyterHub's spawn page; a form body over the cap is refused before it is parsed into
    options (each value is then checked by ``LabKubeSpawner.options_from_form``)."""

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method in _WRITES:
            _check_size(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A short page for a refused body (the full spawn page would repeat the form)."""
        if status_code != 413:
            super().write_error(status_code, **kwargs)
            return
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) else "Request too large."
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{message}\n")


def use_bounded_handlers(handlers: list[Any]) -> int:
    """Replace JupyterHub's spawn handlers (and its ``/user/...`` handler, for the node-lost
    message of :mod:`hub_ext.hub.spawner.node_lost`) in a handler list in place; how many were
    replaced."""
    from hub_ext.hub.spawner.node_lost import LabUserUrlHandler

    replacements: dict[type, type] = {
        UserServerAPIHandler: BoundedServerAPIHandler,
        SpawnHandler: BoundedSpawnHandler,
        UserUrlHandler: LabUserUrlHandler,
    }
    replaced = 0
    for i, rule in enumerate(handlers):
        if isinstance(rule, tuple) and len(rule) >= 2 and rule[1] in replacements:
            handlers[i] = (rule[0], replacements[rule[1]], *rule[2:])
            replaced += 1
    return replaced
