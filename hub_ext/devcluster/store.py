"""The object store behind the emulated API server: objects, resourceVersions, watch fan-out.

Every write takes the next value of one global resourceVersion counter and produces one
:class:`Change`. Changes go to a bounded history (for watches that resume from a version) and to
the watchers of that resource; each watcher filters with its own selector and the JSON line of a
change is encoded once per event type, however many watchers receive it. Writes and fan-out are
synchronous (no ``await``), so a watcher never misses or reorders a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub_ext.devcluster.api_selectors import Selector

Obj = dict[str, Any]
SNAPSHOT_NAME = "snapshot.json"
CLOSE = None  # queued to a watcher to end its stream


@dataclass
class Change:
    """One write: the object after it (``old`` is the object before, for modifications)."""

    rv: int
    type: str
    key: str
    obj: Obj
    old: Obj | None = None
    _lines: dict[str, bytes] = field(default_factory=dict)

    def line(self, event_type: str) -> bytes:
        cached = self._lines.get(event_type)
        if cached is None:
            cached = json.dumps({"type": event_type, "object": self.obj}).encode() + b"\n"
            self._lines[event_type] = cached
        return cached


class Watcher:
    """One open watch: a selector and the queue of encoded events for its stream."""

    def __init__(self, key: str, selector: Selector) -> None:
        self.key = key
        self.selector = selector
        self.queue: asyncio.Queue[tuple[Change, str] | None] = asyncio.Queue()

    def offer(self, change: Change) -> None:
        matches_new = self.selector(change.obj)
        if change.type == "MODIFIED":
            matches_old = change.old is not None and self.selector(change.old)
            if matches_new:
                self.queue.put_nowait((change, "MODIFIED" if matches_old else "ADDED"))
            elif matches_old:
                self.queue.put_nowait((change, "DELETED"))
        elif matches_new:
            self.queue.put_nowait((change, change.type))

    def close(self) -> None:
        self.queue.put_nowait(CLOSE)


def write_snapshot(directory: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (may run in a worker thread)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{SNAPSHOT_NAME}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, directory / SNAPSHOT_NAME)


class Store:
    """Objects by resource key, then by (namespace, name)."""

    def __init__(self, history_size: int = 10000) -> None:
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self.rv = 0
        self.history: deque[Change] = deque(maxlen=history_size)
        self.compacted = 0  # every change with rv > compacted is still in history
        self.watchers: dict[str, set[Watcher]] = {}
        self.dirty = False
        self.dependents: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> objects
        # in-process controllers: called with every change, synchronously; they must not write
        self.observers: list[Callable[[Change], None]] = []

    def _index_owners(self, key: str, obj: Obj, add: bool) -> None:
        meta = obj["metadata"]
        ident = (key, meta.get("namespace") or "", meta["name"])
        for ref in meta.get("ownerReferences") or []:
            uid = ref.get("uid") if isinstance(ref, dict) else None
            if not uid:
                continue
            if add:
                self.dependents.setdefault(uid, set()).add(ident)
            else:
                found = self.dependents.get(uid)
                if found is not None:
                    found.discard(ident)
                    if not found:
                        del self.dependents[uid]

    # -- reads ---------------------------------------------------------------------------------
    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(key, {}).get((namespace, name))

    def items(self, key: str, selector: Selector) -> list[Obj]:
        bucket = self.objects.get(key, {})
        name = selector.exact_name
        if name is not None and selector.namespace is not None:
            found = bucket.get((selector.namespace, name))
            candidates: Any = [found] if found is not None else []
        else:
            candidates = bucket.values()
        return [o for o in candidates if selector(o)]

    def namespaced_keys(self, namespace: str) -> Iterator[tuple[str, str]]:
        for key, bucket in self.objects.items():
            for ns, name in list(bucket):
                if ns == namespace:
                    yield key, name

    # -- writes --------------------------------------------------------------------------------
    def _commit(self, change_type: str, key: str, obj: Obj, old: Obj | None) -> Change:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        change = Change(self.rv, change_type, key, obj, old)
        if len(self.history) == self.history.maxlen:
            self.compacted = self.history[0].rv
        self.history.append(change)
        for watcher in self.watchers.get(key, ()):
            watcher.offer(change)
        for observer in self.observers:
            observer(change)
        self.dirty = True
        return change

    def put(self, key: str, obj: Obj) -> Obj:
        """Create or replace ``obj`` (which the store owns from now on)."""
        meta = obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        bucket = self.objects.setdefault(key, {})
        old = bucket.get(ident)
        if old is not None:
            for field, value in obj.items():  # share unchanged parts with the previous version
                previous = old.get(field)
                if field != "metadata" and previous is not value and previous == value:
                    obj[field] = previous
        bucket[ident] = obj
        if old is not None and old["metadata"].get("ownerReferences"):
            self._index_owners(key, old, add=False)
        if meta.get("ownerReferences"):
            self._index_owners(key, obj, add=True)
        self._commit("ADDED" if old is None else "MODIFIED", key, obj, old)
        return obj

    def remove(self, key: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get(key, {}).pop((namespace, name), None)
        if obj is None:
            return None
        if obj["metadata"].get("ownerReferences"):
            self._index_owners(key, obj, add=False)
        final = dict(obj)
        final["metadata"] = dict(obj["metadata"])
        self._commit("DELETED", key, final, None)
        return final

    # -- watches -------------------------------------------------------------------------------
    def watch(
        self, key: str, selector: Selector, since: int | None, end_marker: Obj | None = None
    ) -> Watcher:
        """Register a watcher; queue initial ADDED events (``since`` None) or the replay.

        ``end_marker`` (a BOOKMARK object) is queued after the initial events, with the
        resourceVersion they are consistent with (for ``sendInitialEvents``).
        """
        watcher = Watcher(key, selector)
        if since is None:
            for obj in self.items(key, selector):
                change = Change(int(obj["metadata"]["resourceVersion"]), "ADDED", key, obj)
                watcher.queue.put_nowait((change, "ADDED"))
            if end_marker is not None:
                end_marker["metadata"]["resourceVersion"] = str(self.rv)
                watcher.queue.put_nowait((Change(self.rv, "BOOKMARK", key, end_marker), "BOOKMARK"))
        else:
            for change in self.history:
                if change.rv > since and change.key == key:
                    watcher.offer(change)
        self.watchers.setdefault(key, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.get(watcher.key, set()).discard(watcher)

    def close_watches(self) -> int:
        count = 0
        for watchers in self.watchers.values():
            for watcher in list(watchers):
                watcher.close()
                count += 1
            watchers.clear()
        return count

    # -- persistence ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A consistent view for :func:`write_snapshot` (stored objects are never mutated)."""
        self.dirty = False
        return {
            "resourceVersion": self.rv,
            "objects": {key: list(bucket.values()) for key, bucket in self.objects.items()},
        }

    def save(self, directory: Path) -> None:
        write_snapshot(directory, self.snapshot())

    def load(self, directory: Path) -> bool:
        path = directory / SNAPSHOT_NAME
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(path.read_text())
            self.rv = max(self.rv, int(data.get("resourceVersion") or 0))
            self.objects = {}
            self.dependents = {}
            for key, items in (data.get("objects") or {}).items():
                bucket = self.objects.setdefault(key, {})
                for obj in items:
                    meta = obj["metadata"]
                    bucket[(meta.get("namespace") or "", meta["name"])] = obj
                    if meta.get("ownerReferences"):
                        self._index_owners(key, obj, add=True)
            self.history.clear()
            self.compacted = self.rv
            return True
        return False
