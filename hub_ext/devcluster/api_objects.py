"""The verbs of the emulated API server on top of :class:`~hub_ext.devcluster.store.Store`.

Creation (uid, creationTimestamp, generateName, defaults, validation), update with optimistic
concurrency, the status subresource, patches, binding, graceful deletion and finalizers. Every
method is synchronous: a request is one atomic step on the store.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import time
import uuid
from typing import Any

from hub_ext.devcluster import api_workloads, validation
from hub_ext.devcluster.api_bodies import decode_body, now_iso, parse_iso, status_success
from hub_ext.devcluster.api_errors import (
    ApiError,
    Cause,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from hub_ext.devcluster.api_selectors import Selector
from hub_ext.devcluster.controllers import garbage
from hub_ext.devcluster.network.services import allocate_cluster_ip
from hub_ext.devcluster.patch import PatchError, apply_patch
from hub_ext.devcluster.resources import BY_KEY, Registry, ResourceType
from hub_ext.devcluster.store import Store

__all__ = ["PODS", "Objects", "decode_body", "now_iso", "parse_iso", "status_success"]
Obj = dict[str, Any]
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAMESPACES = BY_KEY["namespaces"]
PODS = BY_KEY["pods"]


class Objects:
    """Verbs on objects; ``deadlines`` maps pods being deleted to their removal time."""

    def __init__(self, store: Store, registry: Registry | None = None) -> None:
        self.store = store
        self.registry = registry or Registry()
        self.deadlines: dict[tuple[str, str], float] = {}
        self.orphan_margin = 2.0
        self._ips = 0

    # -- helpers -------------------------------------------------------------------------------
    def ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            if self.store.get("namespaces", "", name) is None:
                self.create(NAMESPACES, "", {"metadata": {"name": name}})
        self.deadlines.clear()
        for obj in list(self.store.objects.get("pods", {}).values()):
            meta = obj["metadata"]
            if meta.get("deletionTimestamp"):
                self._schedule(meta["namespace"], meta["name"], meta["deletionTimestamp"])

    def existing(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rtype.key, namespace, name)
        if obj is None:
            raise not_found(rtype.plural, name, rtype.group)
        return obj

    def _check_namespace(self, rtype: ResourceType, namespace: str) -> None:
        if not rtype.namespaced:
            return
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                reason="Forbidden",
            )

    def _next_ip(self) -> str:
        return allocate_cluster_ip(self.store)

    @staticmethod
    def _object_body(rtype: ResourceType, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(f"the request body must be a {rtype.kind} object")
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        body["apiVersion"] = rtype.group_version
        body["kind"] = rtype.kind
        return body

    # -- verbs ---------------------------------------------------------------------------------
    def create(
        self,
        rtype: ResourceType,
        namespace: str,
        body: Any,
        dry_run: bool = False,
        managed: list[Obj] | None = None,
    ) -> Obj:
        obj = self._object_body(rtype, body, namespace)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        validation.validate_name(rtype, obj)
        validation.validate_metadata(rtype, obj)
        self._check_namespace(rtype, namespace)
        if self.store.get(rtype.key, namespace if rtype.namespaced else "", meta["name"]):
            raise already_exists(rtype.plural, meta["name"], rtype.group)
        for key in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ):
            meta.pop(key, None)
        if managed is not None:
            meta["managedFields"] = managed  # server-side apply's field managers
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        if "spec" in obj or rtype.has_status:
            meta["generation"] = 1
        validation.prepare_create(rtype, obj, self._next_ip() if rtype.key == "services" else "")
        api_workloads.prepare(rtype, obj, self.store, True, meta["creationTimestamp"])
        if dry_run:
            return obj
        return self.store.put(rtype.key, obj)

    def _commit_update(self, rtype: ResourceType, old: Obj, new: Obj, sub: str | None) -> Obj:
        meta, old_meta = new["metadata"], old["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new["status"] = status
            meta = new["metadata"]
        else:
            if rtype.has_status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            validation.validate_metadata(rtype, new)
            validation.validate_update(rtype, old, new)
            if new.get("spec") != old.get("spec"):
                api_workloads.prepare(rtype, new, self.store, False, now_iso())
            if new.get("spec") != old.get("spec") and "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            grace = meta.get("deletionGracePeriodSeconds") or 0
            if rtype.key != "pods" or grace == 0 or not new["spec"].get("nodeName"):
                return self._remove(rtype, meta.get("namespace") or "", meta["name"])
        return self.store.put(rtype.key, new)

    def update(self, rtype: ResourceType, ns: str, name: str, body: Any, sub: str | None) -> Obj:
        new = self._object_body(rtype, body, ns)
        if new["metadata"].get("name") != name:
            raise bad_request(
                f"the name of the object ({new['metadata'].get('name')}) does not match the name "
                f"on the URL ({name})"
            )
        old = self.existing(rtype, ns, name)
        wanted = new["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, rtype.group)
        return self._commit_update(rtype, old, new, sub)

    def patch(
        self, rtype: ResourceType, ns: str, name: str, req: tuple[str, bytes], sub: str | None
    ) -> Obj:
        content_type, raw = req
        patch = decode_body(raw)
        old = self.existing(rtype, ns, name)
        if isinstance(patch, dict):
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, name, rtype.group)
        try:
            new = apply_patch(content_type, copy.deepcopy(old), patch)
        except LookupError as exc:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (got {exc})",
            ) from exc
        except (PatchError, ValueError, TypeError) as exc:
            raise invalid(rtype.kind, name, [Cause("patch", str(exc))], rtype.group) from exc
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise invalid(rtype.kind, name, [Cause("metadata", "Required value")], rtype.group)
        new = self._object_body(rtype, new, ns)
        return self._commit_update(rtype, old, new, sub)

    def bind(self, ns: str, name: str, body: Any) -> Obj:
        if not isinstance(body, dict) or not (body.get("target") or {}).get("name"):
            raise invalid(
                "Binding", name, [Cause("target.name", "Required value", "FieldValueRequired")]
            )
        node = body["target"]["name"]
        old = self.existing(PODS, ns, name)
        spec = old.get("spec") or {}
        if spec.get("nodeName"):
            raise conflict(
                "pods/binding",
                name,
                why=f'pod {name} is already assigned to node "{spec["nodeName"]}"',
            )
        if old["metadata"].get("deletionTimestamp"):
            raise conflict("pods/binding", name, why=f"pod {name} is being deleted")
        if spec.get("schedulingGates"):
            raise conflict("pods/binding", name, why=f"pod {name} has non-empty schedulingGates")
        new = copy.deepcopy(old)
        new["spec"]["nodeName"] = node
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if annotations:
            new["metadata"].setdefault("annotations", {}).update(annotations)
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_iso(),
            }
        )
        status["conditions"] = conditions
        self.store.put("pods", new)
        return status_success(201)

    # -- deletion ------------------------------------------------------------------------------
    def _remove(self, rtype: ResourceType, ns: str, name: str) -> Obj:
        if rtype.key == "pods":
            self.deadlines.pop((ns, name), None)
        if rtype.key == "namespaces":
            self._remove_contents(name)
        final = self.store.remove(rtype.key, ns, name)
        if final is None:
            raise not_found(rtype.plural, name, rtype.group)
        self._collect_dependents(final["metadata"].get("uid"))
        return final

    def _collect_dependents(self, uid: str | None) -> None:
        """Delete (in the background) the objects whose ownerReferences name ``uid``."""
        for key, ns, name in sorted(self.store.dependents.pop(uid or "", set())):
            dependent = self.store.get(key, ns, name)
            if dependent is None:
                continue
            refs = dependent["metadata"].get("ownerReferences") or []
            if any(r.get("uid") != uid for r in refs if isinstance(r, dict)):
                continue  # other owners remain
            rtype = self.registry.by_key.get(key)
            if rtype is not None:
                with contextlib.suppress(ApiError):
                    self.delete(rtype, ns, name, {})

    def _remove_contents(self, namespace: str) -> None:
        for key, obj_name in list(self.store.namespaced_keys(namespace)):
            if key == "pods":
                self.deadlines.pop((namespace, obj_name), None)
            self.store.remove(key, namespace, obj_name)

    def _schedule(self, ns: str, name: str, stamp: str) -> None:
        self.deadlines[(ns, name)] = parse_iso(stamp) + self.orphan_margin

    def delete(self, rtype: ResourceType, ns: str, name: str, options: Obj) -> Obj:
        old = self.existing(rtype, ns, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(rtype.plural, name, rtype.group, "Precondition failed: UID mismatch")
        rv = pre.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, rtype.group, "Precondition failed: resourceVersion")
        grace = self._grace(rtype, old, options.get("gracePeriodSeconds"))
        finalizers = old["metadata"].get("finalizers")
        if rtype.key == "namespaces":
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            self.store.put("namespaces", new)
            self._remove_contents(name)
            if finalizers:
                return new
            return self._remove(rtype, ns, name)
        policy = garbage.propagation(options)
        if policy == "Orphan":
            garbage.orphan(self.store, old)
        elif policy == "Foreground" and self.store.dependents.get(old["metadata"]["uid"]):
            return garbage.delete_foreground(self, rtype, old)
        if grace == 0 and not finalizers:
            return self._remove(rtype, ns, name)
        current = old["metadata"].get("deletionTimestamp")
        if current and parse_iso(current) <= time.time() + grace:
            return old
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now_iso(grace)
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        if rtype.key == "pods" and grace:
            self._schedule(ns, name, new["metadata"]["deletionTimestamp"])
        return self.store.put(rtype.key, new)

    @staticmethod
    def _grace(rtype: ResourceType, obj: Obj, requested: Any) -> int:
        if rtype.key != "pods":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        try:
            return max(0, int(requested))
        except (TypeError, ValueError) as exc:
            raise bad_request("gracePeriodSeconds must be an integer") from exc

    def delete_collection(self, rtype: ResourceType, selector: Selector, options: Obj) -> Obj:
        items = self.store.items(rtype.key, selector)
        for obj in items:
            meta = obj["metadata"]
            try:
                self.delete(rtype, meta.get("namespace") or "", meta["name"], options)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.group_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    def reap(self, now: float) -> int:
        """Remove pods whose grace period (plus a margin) ran out without the kubelet."""
        removed = 0
        for (ns, name), deadline in list(self.deadlines.items()):
            if deadline > now:
                continue
            obj = self.store.get("pods", ns, name)
            if obj is not None and obj["metadata"].get("finalizers"):
                continue  # checked again once the finalizers are gone
            self.deadlines.pop((ns, name), None)
            if obj is None or not obj["metadata"].get("deletionTimestamp"):
                continue
            self.store.remove("pods", ns, name)
            self._collect_dependents(obj["metadata"].get("uid"))
            removed += 1
        return removed
