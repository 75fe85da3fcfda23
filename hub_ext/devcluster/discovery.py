"""Discovery documents: /version, /api, /apis, group versions and aggregated discovery (v2)."""

from __future__ import annotations

from typing import Any

from hub_ext.devcluster.resources import VERBS, Registry, ResourceType

Obj = dict[str, Any]
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
SERVER_ADDRESS = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "binding": ["create"],
    "log": ["get"],
    "token": ["create"],
    "exec": ["create", "get"],
    "eviction": ["create"],
    "scale": ["get", "patch", "update"],
}
SUB_KINDS = {
    "binding": "Binding",
    "token": "TokenRequest",
    "exec": "PodExecOptions",
    "eviction": "Eviction",
    "scale": "Scale",
}
# subresources whose kind lives in another group, as the real discovery documents name them
# (kubectl drain looks for pods/eviction with group policy before it evicts rather than deletes)
SUB_GROUPS = {
    "eviction": ("policy", "v1"),
    "scale": ("autoscaling", "v1"),
    "token": ("authentication.k8s.io", "v1"),
}
BUILTIN = Registry()


def version_info() -> Obj:
    return {
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0-labhub-devcluster",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions() -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": SERVER_ADDRESS}


def _group_doc(name: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry = BUILTIN) -> Obj:
    items = [_group_doc(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}


def api_group(name: str, registry: Registry = BUILTIN) -> Obj | None:
    versions = registry.groups().get(name)
    if not name or versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(name, versions)}


def _resource_entries(r: ResourceType) -> list[Obj]:
    main: Obj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(VERBS),
    }
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    for sub in r.subresources:
        entry: Obj = {
            "name": f"{r.plural}/{sub}",
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": SUB_KINDS.get(sub, r.kind),
            "verbs": SUB_VERBS[sub],
        }
        if sub in SUB_GROUPS:
            entry["group"], entry["version"] = SUB_GROUPS[sub]
        out.append(entry)
    return out


def resource_list(group: str, version: str, registry: Registry = BUILTIN) -> Obj | None:
    found = registry.resources_in(group, version)
    if not found:
        return None
    gv = f"{group}/{version}" if group else version
    resources = [entry for r in found for entry in _resource_entries(r)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _aggregated_resource(r: ResourceType) -> Obj:
    doc: Obj = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(VERBS),
    }
    if r.short_names:
        doc["shortNames"] = list(r.short_names)
    if r.categories:
        doc["categories"] = list(r.categories)
    if r.subresources:
        doc["subresources"] = [
            {
                "subresource": sub,
                "responseKind": {
                    "group": SUB_GROUPS.get(sub, (r.group, r.version))[0],
                    "version": SUB_GROUPS.get(sub, (r.group, r.version))[1],
                    "kind": SUB_KINDS.get(sub, r.kind),
                },
                "verbs": SUB_VERBS[sub],
            }
            for sub in r.subresources
        ]
    return doc


def aggregated(
    core: bool, api_version: str = "apidiscovery.k8s.io/v2", registry: Registry = BUILTIN
) -> Obj:
    """The APIGroupDiscoveryList for /api (``core``) or /apis."""
    items = []
    for group, versions in registry.groups().items():
        if bool(group) == core:
            continue
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(r) for r in registry.resources_in(group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    }


def wants_aggregated(accept: str) -> str | None:
    """The aggregated-discovery media type the client accepts first, if any."""
    for part in accept.split(","):
        if "as=APIGroupDiscoveryList" in part:
            if "v=v2beta1" in part:
                return AGGREGATED_V2BETA1
            if "v=v2" in part:
                return AGGREGATED_V2
    return None


OPENAPI_HASH = "labhub-devcluster-1"


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root(registry: Registry = BUILTIN) -> Obj:
    """The OpenAPI v3 index: one document per group version."""
    paths = {}
    for group, versions in registry.groups().items():
        for v in versions:
            gv = _gv_path(group, v)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={OPENAPI_HASH}"}
    return {"paths": paths}


def openapi_v3_group(group: str, version: str, registry: Registry = BUILTIN) -> Obj | None:
    """A minimal OpenAPI v3 document for one group version.

    It declares the object paths with their PATCH operation and its ``fieldValidation`` query
    parameter, which is how kubectl learns that the server validates (so it skips client-side
    schema validation); it carries no schemas.
    """
    found = registry.resources_in(group, version)
    if not found:
        return None
    paths: Obj = {}
    for r in found:
        prefix = "/" + _gv_path(group, version)
        if r.namespaced:
            prefix += "/namespaces/{namespace}"
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        paths[f"{prefix}/{r.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{r.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version_info()["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
