"""List + watch caches over kubernetes_asyncio, the way controllers keep their view.

An :class:`Informer` lists a resource, then watches from the list's resourceVersion, resumes
after a dropped stream from the last version it saw, relists after ``410 Gone`` and retries with
back-off while the API server is unreachable. Objects are kept as plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Handler = Callable[[str, Obj], None]
ListCall = Callable[..., Awaitable[Any]]
WATCH_SECONDS = 240
WATCH_TYPES = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


def api_client(url: str) -> ApiClient:
    """A kubernetes_asyncio client for the emulator's plain-HTTP API server."""
    config = Configuration(host=url)
    config.verify_ssl = False
    return ApiClient(configuration=config)


def key_of(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


async def read_json(resp: Any) -> Any:
    """The JSON body of a ``_preload_content=False`` response; ApiException for non-2xx
    statuses (kubernetes_asyncio only raises them itself when it preloads the content)."""
    try:
        body = await resp.read()
    finally:
        resp.release()
    if not 200 <= resp.status <= 299:
        raise ApiException(status=resp.status, reason=body[:300].decode("utf-8", "replace"))
    return json.loads(body) if body else {}


async def request(call: Awaitable[Any]) -> Any:
    """Await a kubernetes_asyncio call made with ``_preload_content=False``; see read_json."""
    return await read_json(await call)


class Informer:
    """Keeps ``cache`` in step with the API server and calls ``handler(type, obj)`` per change."""

    def __init__(self, list_call: ListCall, handler: Handler, name: str) -> None:
        self._list = list_call
        self._handler = handler
        self.name = name
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resp: Any = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer-{self.name}")

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
                log.debug("%s: API error %s, retrying", self.name, exc.status)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.debug("%s: %r, retrying", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _relist(self) -> str:
        resp = await self._list(_preload_content=False)
        data = await read_json(resp)
        fresh = {key_of(item): item for item in data.get("items") or []}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                self._handler("DELETED", old)
        for key, item in fresh.items():
            kind = "MODIFIED" if key in self.cache else "ADDED"
            self.cache[key] = item
            self._handler(kind, item)
        self.synced.set()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, version: str) -> str:
        self._resp = resp = await self._list(
            watch="true",  # the lower-case spelling every API server version accepts
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
        )
        if not 200 <= resp.status <= 299:
            await read_json(resp)  # raises ApiException (410 Gone: relist)
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
                key = key_of(obj)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                self._handler(str(kind), obj)
        finally:
            resp.close()
            self._resp = None
