"""A list + watch cache over kubernetes_asyncio for LabHub's own controllers.

Lists a resource, watches from the list's resourceVersion, resumes after a dropped stream from the
last version seen, relists after ``410 Gone`` and retries with back-off while the API server is
unreachable. Objects are plain JSON dicts; ``on_change(type, obj)`` is called for every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)
Obj = dict[str, Any]
ListCall = Callable[..., Awaitable[Any]]
OnChange = Callable[[str, Obj], None]
WATCH_SECONDS = 300
WATCH_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


async def read_json(resp: Any) -> Any:
    """The body of a ``_preload_content=False`` response; ApiException for non-2xx."""
    try:
        body = await resp.read()
    finally:
        resp.release()
    if not 200 <= resp.status <= 299:
        raise ApiException(status=resp.status, reason=body[:300].decode("utf-8", "replace"))
    return json.loads(body) if body else {}


def object_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Informer:
    """Keeps ``cache`` in step with the API server and calls ``on_change(type, obj)`` per change.

    ``max_delay`` caps the back-off between retries; ``quiet`` logs retries at debug level (for
    the cluster emulator's own components, whose retries are routine during fault injection).
    """

    def __init__(
        self,
        list_call: ListCall,
        on_change: OnChange,
        name: str,
        *,
        max_delay: float = 2.0,
        quiet: bool = False,
    ) -> None:
        self._list = list_call
        self._on_change = on_change
        self.name = name
        self._max_delay = max_delay
        self._log_level = logging.DEBUG if quiet else logging.WARNING
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resp: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"labhub-informer-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    async def _run(self) -> None:
        delay = 0.05
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._relist()
                version = await self._watch(version)
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                    continue
                log.log(self._log_level, "%s watch: API error %s; retrying", self.name, exc.status)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.log(self._log_level, "%s watch: %r; retrying", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)

    async def _relist(self) -> str:
        data = await read_json(await self._list(_preload_content=False))
        fresh = {object_key(item): item for item in data.get("items") or []}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                self._on_change("DELETED", old)
        for key, item in fresh.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = item
            self._on_change(kind, item)
        self.synced.set()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, version: str) -> str:
        self._resp = resp = await self._list(
            watch="true",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
        )
        if not 200 <= resp.status <= 299:
            await read_json(resp)
        try:
            while True:
                line = await resp.content.readline()
                if not line:
                    return version
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object")
                if not isinstance(obj, dict) or kind not in WATCH_TYPES:
                    raise ValueError(f"not a watch event: {line[:200]!r}")
                if kind == "ERROR":
                    raise ApiException(
                        status=int(obj.get("code") or 500), reason=obj.get("message")
                    )
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                key = object_key(obj)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                self._on_change(str(kind), obj)
        finally:
            resp.close()
            self._resp = None
