"""CustomResourceDefinitions: each served version of a CRD becomes a resource type of its own.

Creating a ``apiextensions.k8s.io/v1`` CustomResourceDefinition registers its kind with the API
server at once (it is ``Established`` when the create returns): its objects are then created,
listed, watched, patched and deleted like built-in ones, and appear in discovery with their short
names and categories. The ``status`` subresource is served when the version declares it. The
OpenAPI schema is stored but not enforced, and no conversion webhook is called. Deleting the CRD
removes the kind and every object of it.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from hub_ext.devcluster.api_errors import Cause, invalid
from hub_ext.devcluster.resources import Registry, ResourceType
from hub_ext.devcluster.store import Change, Store

Obj = dict[str, Any]
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
KIND = "CustomResourceDefinition"
GROUP = "apiextensions.k8s.io"


def resource_types(crd: Obj) -> list[ResourceType]:
    """One resource type per served version of ``crd``."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subs = ("status",) if "status" in (version.get("subresources") or {}) else ()
        out.append(
            ResourceType(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                tuple(names.get("shortNames") or ()),
                subs,
                tuple(names.get("categories") or ()),
            )
        )
    return out


def _causes(crd: Obj) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value", "FieldValueRequired")]
    causes: list[Cause] = []
    given = spec.get("names")
    names: Obj = given if isinstance(given, dict) else {}
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(Cause(f"spec.names.{field}", "Required value", "FieldValueRequired"))
    if not spec.get("group"):
        causes.append(Cause("spec.group", "Required value", "FieldValueRequired"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                f'Unsupported value: "{scope or ""}": supported values: "Cluster", "Namespaced"',
                "FieldValueNotSupported",
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(
            Cause(
                "spec.versions",
                "Invalid value: null: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(
            Cause(
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    name = (crd.get("metadata") or {}).get("name") or ""
    if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    return causes


def prepare(crd: Obj, now: str) -> None:
    """Validate a new or changed CRD and give it the status of an established one."""
    causes = _causes(crd)
    if causes:
        raise invalid(KIND, (crd.get("metadata") or {}).get("name") or "", causes, GROUP)
    spec = crd["spec"]
    names = copy.deepcopy(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    spec["names"] = names
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    previous = (crd.get("status") or {}).get("storedVersions") or []
    crd["status"] = {
        "acceptedNames": copy.deepcopy(names),
        "storedVersions": sorted({*previous, storage}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }


class CrdObserver:
    """Keeps a registry in step with the CRDs in a store (an observer of the store)."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        self._served: dict[str, list[ResourceType]] = {}  # CRD name -> types it added

    def load(self) -> None:
        """Register the CRDs already in the store (after loading a snapshot)."""
        for crd in list(self.store.objects.get(CRD_KEY, {}).values()):
            self._register(crd)

    def _register(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self._unregister(name)
        try:
            types = resource_types(crd)
        except (KeyError, TypeError):
            return
        for rtype in types:
            self.registry.add(rtype)
        self._served[name] = types

    def _unregister(self, name: str) -> list[ResourceType]:
        types = self._served.pop(name, [])
        for rtype in types:
            self.registry.remove(rtype.group, rtype.plural)
        return types

    def __call__(self, change: Change) -> None:
        if change.key != CRD_KEY:
            return
        if change.type == "DELETED":
            keys = {t.key for t in self._unregister(change.obj["metadata"]["name"])}
            if keys:
                _later(lambda: self._purge(keys))
        else:
            self._register(change.obj)

    def _purge(self, keys: set[str]) -> None:
        for key in keys:
            if any(r.key == key for r in self.registry.custom.values()):
                continue  # defined again meanwhile
            for namespace, name in list(self.store.objects.get(key, {})):
                self.store.remove(key, namespace, name)


def _later(callback: Any) -> None:
    try:
        asyncio.get_running_loop().call_soon(callback)
    except RuntimeError:
        callback()
