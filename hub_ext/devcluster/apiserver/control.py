"""Fault controls over HTTP under ``/_devcluster/`` (outside the Kubernetes API paths).

- ``GET /_devcluster/faults``: the active rules.
- ``POST /_devcluster/faults`` with ``{"kind": "error", "verb", "resource", "status", "times"}``
  or ``{"kind": "latency", "verb", "resource", "seconds"}``: add a rule (201, the rule).
- ``DELETE /_devcluster/faults``: remove every rule; ``DELETE /_devcluster/faults/<id>``: one.
- ``POST /_devcluster/drop-watches``: end every open watch stream.
- ``POST /_devcluster/restart``: restart the API server (objects kept) just after answering.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub_ext.devcluster.apiserver.errors import ApiError, bad_request

if TYPE_CHECKING:
    from hub_ext.devcluster.apiserver.server import ApiServer


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj).encode(), status=status, content_type="application/json"
    )


async def _add_rule(server: ApiServer, request: web.Request) -> web.Response:
    try:
        spec = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise bad_request("a fault rule must be a JSON object")
    kind = spec.get("kind", "error")
    verb, resource = str(spec.get("verb", "*")), str(spec.get("resource", "*"))
    try:
        if kind == "error":
            if "status" not in spec:
                raise ValueError("an error rule needs 'status' (an HTTP code such as 500)")
            times = spec.get("times")
            rule = server.faults.inject_error(
                verb,
                resource,
                int(spec["status"]),
                None if times is None else int(times),
                str(spec.get("message") or ""),
            )
        elif kind == "latency":
            rule = server.faults.inject_latency(verb, resource, float(spec.get("seconds", 0)))
        else:
            raise ValueError(f"unknown fault kind {kind!r}; accepted: 'error', 'latency'")
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from exc
    return _json(rule.describe(), 201)


async def control(server: ApiServer, request: web.Request, parts: list[str]) -> web.Response:
    method = request.method
    if parts == ["faults"]:
        if method == "GET":
            return _json({"rules": [r.describe() for r in server.faults.rules]})
        if method == "POST":
            return await _add_rule(server, request)
        if method == "DELETE":
            server.faults.clear()
            return _json({"rules": []})
    if len(parts) == 2 and parts[0] == "faults" and method == "DELETE":
        try:
            removed = server.faults.remove(int(parts[1]))
        except ValueError as exc:
            raise bad_request("a fault rule id is an integer") from exc
        if not removed:
            raise ApiError(404, f"no fault rule with id {parts[1]}")
        return _json({"removed": int(parts[1])})
    if parts == ["drop-watches"] and method == "POST":
        return _json({"closed": server.drop_watches()})
    if parts == ["restart"] and method == "POST":
        server.schedule_restart()
        return _json({"restarting": True}, 202)
    raise ApiError(
        404,
        "unknown control path; use /_devcluster/faults, /_devcluster/drop-watches or "
        "/_devcluster/restart",
    )
