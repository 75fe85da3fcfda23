"""Garbage collection by ownerReferences, with the three propagation policies of DeleteOptions.

- ``Background`` (the default): the owner goes at once; then every object whose only owners are
  gone is deleted (pods with their grace period), recursively.
- ``Foreground``: the owner gets a ``deletionTimestamp`` and the ``foregroundDeletion``
  finalizer, its dependents are deleted, and once none is left the finalizer is removed and the
  owner goes (:func:`finish_foreground`, run by the controller manager).
- ``Orphan``: the dependents lose their ownerReference to the owner and stay.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.api_errors import ApiError, bad_request
from hub_ext.devcluster.store import Store

if TYPE_CHECKING:
    from hub_ext.devcluster.api_objects import Objects
    from hub_ext.devcluster.resources import ResourceType

Obj = dict[str, Any]
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
POLICIES = ("Background", "Foreground", "Orphan")


def propagation(options: Obj) -> str:
    policy = options.get("propagationPolicy")
    if policy is None:
        return "Orphan" if options.get("orphanDependents") else "Background"
    if policy not in POLICIES:
        raise bad_request(
            f'Unsupported value: "{policy}": supported values: "Background", "Foreground", "Orphan"'
        )
    return str(policy)


def _now() -> str:
    from hub_ext.devcluster.api_objects import now_iso

    return now_iso()


def orphan(store: Store, owner: Obj) -> None:
    """Remove the ownerReferences to ``owner`` from its dependents."""
    uid = owner["metadata"]["uid"]
    for key, ns, name in sorted(store.dependents.get(uid, set())):
        dependent = store.get(key, ns, name)
        if dependent is None:
            continue
        new = copy.deepcopy(dependent)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        store.put(key, new)


def delete_foreground(objects: Objects, rtype: ResourceType, owner: Obj) -> Obj:
    """Mark ``owner`` for foreground deletion and delete its dependents (foreground too)."""
    meta = owner["metadata"]
    new = copy.deepcopy(owner)
    finalizers = new["metadata"].setdefault("finalizers", [])
    if FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
    new["metadata"].setdefault("deletionTimestamp", _now())
    new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
    marked = objects.store.put(rtype.key, new)
    for key, ns, name in sorted(objects.store.dependents.get(meta["uid"], set())):
        dependent = objects.store.get(key, ns, name)
        dep_type = objects.registry.by_key.get(key)
        if dependent is None or dep_type is None or dependent["metadata"].get("deletionTimestamp"):
            continue
        try:
            objects.delete(dep_type, ns, name, {"propagationPolicy": "Foreground"})
        except ApiError as exc:
            if exc.code != 404:
                raise
    return marked


def finish_foreground(objects: Objects, pending: set[tuple[str, str, str]]) -> None:
    """Remove the ``foregroundDeletion`` finalizer from the ``pending`` owners (key, namespace,
    name) that have no dependents left; those are dropped from ``pending``."""
    store = objects.store
    for ident in sorted(pending):
        key, ns, name = ident
        obj = store.get(key, ns, name)
        rtype = objects.registry.by_key.get(key)
        if (
            obj is None
            or rtype is None
            or FOREGROUND not in (obj["metadata"].get("finalizers") or [])
        ):
            pending.discard(ident)
            continue
        if store.dependents.get(obj["metadata"]["uid"]):
            continue
        pending.discard(ident)
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [
            f for f in obj["metadata"]["finalizers"] if f != FOREGROUND
        ]
        try:
            objects.update(rtype, ns, name, new, None)
        except ApiError:
            pending.add(ident)
