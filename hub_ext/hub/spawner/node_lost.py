"""What a student sees when their server stopped because its node was lost.

A node that goes NotReady takes its servers with it (the cluster evicts their pods); the
student's files are on the home volume and survive. JupyterHub's generic answer for a stopped
server is "Your server is not running" (HTTP 424). :class:`LabUserUrlHandler` (JupyterHub's
``/user/{name}/...`` handler, swapped in by :mod:`hub_ext.hub.spawner.hub_hooks`) answers instead
with :data:`NODE_LOST`, on the page and for API requests, when ``LabKubeSpawner.node_lost`` names
the lost node (the spawner sets it when its ``poll`` finds the server gone from a node that is not
Ready; it is kept in the spawner's state, so it outlives the spawner object and a hub restart;
the next start clears it).
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.handlers.base import UserUrlHandler

from hub_ext.hub.admin_view import LabTemplates

NODE_LOST = "Your server's node was lost; your files are safe; press Start."
TEMPLATE = "labhub-node-lost.html"


def note_lost_node(spawner: Any, controller: Any) -> None:
    """After ``poll`` found ``spawner``'s server stopped: remember the node it ran on (the
    spawner's ``_last_node``) when that node is not Ready, so the student is told it was lost."""
    node = getattr(spawner, "_last_node", None)
    if not node or controller is None or controller.node_ready(node):
        return
    if spawner.node_lost != node:
        spawner.log.warning("%s stopped: its node %s is not ready", spawner._log_name, node)
    spawner.node_lost = node


class LabUserUrlHandler(LabTemplates, UserUrlHandler):  # type: ignore[misc]
    """``/hub/user/{name}/...`` with the node-lost message for a server whose node was lost."""

    def _lost_node(self, user_name: str, server_name: str = "") -> str | None:
        user = self.find_user(user_name) if user_name else None
        if user is None:
            return None
        spawner = user.spawners[server_name]  # a stopped server's spawner is made afresh
        if spawner is None or spawner.ready or spawner.pending == "spawn":
            return None
        node = getattr(spawner, "node_lost", None)
        return str(node) if node else None

    def _fail_api_request(self, user_name: str = "", server_name: str = "") -> None:
        if self._lost_node(user_name, server_name) is None:
            super()._fail_api_request(user_name, server_name)
            return
        self.set_status(424)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"status": 424, "message": NODE_LOST}))

    def render_template(self, name: str, sync: bool = False, **ns: Any) -> Any:
        if name == "not_running.html" and not ns.get("failed"):
            user = ns.get("user")
            node = self._lost_node(getattr(user, "name", ""), str(ns.get("server_name") or ""))
            if node is not None:
                name, ns = TEMPLATE, {**ns, "node_lost": node, "node_lost_message": NODE_LOST}
        return super().render_template(name, sync, **ns)


__all__ = ["NODE_LOST", "LabUserUrlHandler", "note_lost_node"]
