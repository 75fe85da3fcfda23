"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``), as ``kubectl apply
--server-side`` and Helm 4 use it.

A subset of the real field management: maps are merged field by field, every other value
(lists included) is one field. Each Apply manager's fields are kept in ``managedFields``
(``FieldsV1``); a field another Apply manager owns with a different value is a conflict (``409``,
unless ``force=true``, which takes it over); a field the same manager applied before and no
longer applies is removed unless another manager owns it. An object that does not exist is
created. Managers of plain updates (``Update`` operations) are not tracked.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import yaml

from hub_ext.devcluster.api_errors import ApiError, Cause, bad_request
from hub_ext.devcluster.resources import ResourceType

Obj = dict[str, Any]
Path = tuple[str, ...]
APPLY = "application/apply-patch+yaml"
_UNOWNED = {
    ("apiVersion",), ("kind",), ("status",), ("metadata", "name"), ("metadata", "namespace"),
    ("metadata", "uid"), ("metadata", "resourceVersion"), ("metadata", "managedFields"),
    ("metadata", "creationTimestamp"), ("metadata", "generation"),
}  # fmt: skip


def is_apply(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == APPLY


def _leaves(obj: Any, prefix: Path = ()) -> set[Path]:
    if prefix in _UNOWNED:
        return set()
    if isinstance(obj, dict) and obj:
        out: set[Path] = set()
        for key, value in obj.items():
            out |= _leaves(value, (*prefix, str(key)))
        return out
    return {prefix} if prefix else set()


def _fields_v1(paths: set[Path]) -> Obj:
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def _paths_of(fields: Obj, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, value in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        out |= _paths_of(value, path) if value else {path}
    return out


def _get(obj: Any, path: Path) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _delete(obj: Obj, path: Path) -> None:
    parents = [obj]
    for part in path[:-1]:
        child = parents[-1].get(part)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(parents) - 1, 0, -1):  # drop maps the removal left empty
        if not parents[depth]:
            parents[depth - 1].pop(path[depth - 1], None)


def _merge(live: Any, config: Any) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            out[key] = _merge(live.get(key), value)
        return out
    return copy.deepcopy(config)


def _entry(manager: str, api_version: str, paths: set[Path]) -> Obj:
    return {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fieldsType": "FieldsV1",
        "fieldsV1": _fields_v1(paths),
    }


def parse_config(raw: bytes) -> Obj:
    try:
        config = yaml.safe_load(raw.decode("utf-8")) if raw else None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise bad_request("the apply configuration must be an object")
    return config


def _dotted(path: Path) -> str:
    return "." + ".".join(path)


def applied(
    rtype: ResourceType, live: Obj | None, config: Obj, manager: str, force: bool
) -> tuple[Obj, list[Obj]]:
    """(the object to store, its managedFields) after ``manager`` applies ``config``."""
    if not manager:
        raise bad_request("PATCH request must specify fieldManager")
    for key, wanted in (("apiVersion", rtype.group_version), ("kind", rtype.kind)):
        if config.get(key) and config[key] != wanted:
            raise bad_request(
                f"the {key} of the apply configuration ({config[key]}) does not match the "
                f"resource ({wanted})"
            )
    mine = _leaves(config)
    if live is None:
        return copy.deepcopy(config), [_entry(manager, rtype.group_version, mine)]
    entries = [e for e in (live["metadata"].get("managedFields") or []) if isinstance(e, dict)]
    owned = {
        i: _paths_of(e.get("fieldsV1") or {})
        for i, e in enumerate(entries)
        if e.get("operation") == "Apply" and e.get("manager") != manager
    }
    conflicts = [
        (entries[i], p)
        for i, paths in owned.items()
        for p in sorted(mine & paths)
        if _get(live, p) != _get(config, p)
    ]
    if conflicts and not force:
        causes = [
            Cause(
                _dotted(p),
                f'conflict with "{e["manager"]}" using {e.get("apiVersion", rtype.group_version)}',
                "FieldManagerConflict",
            )
            for e, p in conflicts
        ]
        count = f"{len(causes)} conflict" + ("s" if len(causes) > 1 else "")
        if len(causes) == 1:
            text = f"{causes[0].message}: {causes[0].field}"
        else:
            by_manager: dict[str, list[str]] = {}
            for c in causes:
                by_manager.setdefault(c.message.removeprefix("conflict with "), []).append(c.field)
            text = "\n".join(
                f"conflicts with {m}:\n" + "\n".join(f"- {f}" for f in fields)
                for m, fields in sorted(by_manager.items())
            )
        raise ApiError(409, f"Apply failed with {count}: {text}", reason="Conflict",
                       causes=causes)  # fmt: skip
    for i in owned:
        owned[i] -= mine  # forced: the fields move to this manager
    others = set().union(*owned.values()) if owned else set()
    previous = next(
        (
            _paths_of(e.get("fieldsV1") or {})
            for e in entries
            if e.get("operation") == "Apply" and e.get("manager") == manager
        ),
        set(),
    )
    result = _merge(live, config)
    for path in previous - mine - others:
        _delete(result, path)
    kept = [
        {**e, "fieldsV1": _fields_v1(owned[i])} if i in owned else e
        for i, e in enumerate(entries)
        if e.get("manager") != manager or e.get("operation") != "Apply"
    ]
    kept = [e for e in kept if e.get("operation") != "Apply" or e.get("fieldsV1")]
    return result, [*kept, _entry(manager, rtype.group_version, mine)]


def server_side_apply(
    objects: Any,
    admit: Any,
    rtype: ResourceType,
    ns: str,
    name: str,
    sub: str | None,
    raw: bytes,
    query: Any,
) -> tuple[Obj, int, list[str]]:
    """Apply a configuration to ``objects``: (object, HTTP code, admission warnings)."""
    config = parse_config(raw)
    meta = config.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if meta.get("name") not in (None, name):
        raise bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    meta["name"] = name
    live = objects.store.get(rtype.key, ns if rtype.namespaced else "", name)
    force = (query.get("force") or "").lower() in ("true", "1")
    result, managed = applied(rtype, live, config, query.get("fieldManager") or "", force)
    if live is None:
        if sub:
            raise ApiError(404, f'{rtype.plural} "{name}" not found', reason="NotFound")
        warnings = admit(rtype.key, ns, result)
        dry_run = query.get("dryRun") == "All"
        return objects.create(rtype, ns, result, dry_run, managed), 201, warnings
    result["metadata"]["managedFields"] = managed
    result = objects._object_body(rtype, result, ns)
    return objects._commit_update(rtype, live, result, sub), 200, []
