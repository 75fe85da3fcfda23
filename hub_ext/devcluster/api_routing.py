"""Routing of the emulated API server: resource URLs to (type, namespace, name, subresource),
HTTP methods to API verbs, and the discovery and OpenAPI documents."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub_ext.devcluster import discovery
from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.api_tables import wants_table
from hub_ext.devcluster.resources import Registry, ResourceType

JSON = "application/json"
NOT_FOUND = "the server could not find the requested resource"


def json_response(obj: Any, status: int = 200, content_type: str = JSON) -> web.Response:
    return web.Response(
        body=json.dumps(obj).encode(), status=status, headers={"Content-Type": content_type}
    )


def parse_path(
    parts: list[str], registry: Registry
) -> tuple[ResourceType, str, str | None, str | None] | None:
    """(resource type, namespace, name, subresource) for a resource URL, else None."""
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    rtype = registry.lookup(group, version, rest[0])
    if rtype is None or (namespace and not rtype.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rtype.subresources:
        return None
    return rtype, namespace, name, sub


def table_include(request: web.Request) -> str | None:
    if not wants_table(request.headers.get("Accept", "")):
        return None
    return request.query.get("includeObject") or "Metadata"


def flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def verb_of(method: str, name: str | None, sub: str | None, watching: bool) -> str:
    if method == "GET":
        if name is None:
            return "watch" if watching else "list"
        return "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if name is not None else "deletecollection"
    raise ApiError(405, f"the server does not allow the method {method} on this resource")


def serve_discovery(
    request: web.Request, parts: list[str], registry: Registry
) -> web.Response | None:
    """The discovery and OpenAPI documents (GET only); None for any other path."""
    if request.method != "GET":
        return None
    accept = request.headers.get("Accept", "")
    if parts == ["version"]:
        return json_response(discovery.version_info())
    if parts in (["api"], ["apis"]):
        media = discovery.wants_aggregated(accept)
        if media is not None:
            version = "apidiscovery.k8s.io/v2beta1" if "v2beta1" in media else None
            doc = discovery.aggregated(
                parts == ["api"], version or "apidiscovery.k8s.io/v2", registry
            )
            return json_response(doc, content_type=media)
        return json_response(
            discovery.api_versions() if parts == ["api"] else discovery.api_group_list(registry)
        )
    if parts[0] == "api" and len(parts) == 2:
        doc = discovery.resource_list("", parts[1], registry)
    elif parts[0] == "apis" and len(parts) == 2:
        doc = discovery.api_group(parts[1], registry)
    elif parts[0] == "apis" and len(parts) == 3:
        doc = discovery.resource_list(parts[1], parts[2], registry)
    elif parts[:2] == ["openapi", "v3"]:
        if len(parts) == 2:
            return json_response(discovery.openapi_v3_root(registry))
        rest = parts[2:]
        if rest[0] == "api" and len(rest) == 2:
            doc = discovery.openapi_v3_group("", rest[1], registry)
        elif rest[0] == "apis" and len(rest) == 3:
            doc = discovery.openapi_v3_group(rest[1], rest[2], registry)
        else:
            doc = None
    elif parts[0] in ("openapi", "swagger.json"):
        raise ApiError(404, "the emulated API server publishes OpenAPI v3 documents only")
    else:
        return None
    if doc is None:
        raise ApiError(404, NOT_FOUND)
    return json_response(doc)
