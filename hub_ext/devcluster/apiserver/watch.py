"""Watch streams: one JSON event per line over a chunked HTTP response.

A watch without a resourceVersion (or with ``"0"``) starts with synthetic ``ADDED`` events for
the current objects; a watch from a version replays the changes after it from the history, or
answers one ``ERROR`` event carrying a ``410 Expired`` Status when that version is older than
the history. With ``allowWatchBookmarks`` an idle stream sends ``BOOKMARK`` events carrying the
newest resourceVersion every ``bookmark_interval`` seconds. ``sendInitialEvents=true`` (the
watch-list protocol of newer client-go) sends the initial ``ADDED`` events, then a BOOKMARK
annotated ``k8s.io/initial-events-end: "true"``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub_ext.devcluster.apiserver.errors import gone
from hub_ext.devcluster.apiserver.resources import ResourceType
from hub_ext.devcluster.apiserver.selectors import Selector
from hub_ext.devcluster.apiserver.store import CLOSE, Change, Store
from hub_ext.devcluster.apiserver.tables import table

IDLE_CHECK_SECONDS = 5.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
MAX_BATCH = 256


@dataclass(frozen=True)
class WatchRequest:
    rtype: ResourceType
    selector: Selector
    since: int | None
    timeout: float
    bookmarks: bool
    bookmark_interval: float
    send_initial_events: bool = False
    table_include: str | None = None  # kubectl get --watch asks for Table rows


def _bookmark_object(rtype: ResourceType, rv: int) -> dict[str, Any]:
    return {
        "kind": rtype.kind,
        "apiVersion": rtype.group_version,
        "metadata": {"resourceVersion": str(rv)},
    }


def _bookmark(rtype: ResourceType, rv: int) -> bytes:
    return json.dumps({"type": "BOOKMARK", "object": _bookmark_object(rtype, rv)}).encode() + b"\n"


def _encoder(watch: WatchRequest) -> Callable[[tuple[Change, str]], bytes]:
    include = watch.table_include
    if include is None:
        return lambda item: item[0].line(item[1])

    def as_table(item: tuple[Change, str]) -> bytes:
        change, kind = item
        if kind == "BOOKMARK":
            return change.line(kind)
        obj = table(watch.rtype, [change.obj], str(change.rv), include)
        return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

    return as_table


async def _start(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


async def serve_watch(
    request: web.Request, store: Store, watch: WatchRequest
) -> web.StreamResponse:
    if watch.since is not None and watch.since < store.compacted:
        resp = await _start(request)
        status = gone(f"too old resource version: {watch.since} ({store.compacted + 1})").status()
        await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        await resp.write_eof()
        return resp
    resp = await _start(request)
    marker = None
    if watch.send_initial_events:
        marker = _bookmark_object(watch.rtype, 0)
        marker["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
    watcher = store.watch(watch.rtype.key, watch.selector, watch.since, marker)
    encode = _encoder(watch)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + watch.timeout
        wake = watch.bookmark_interval if watch.bookmarks else IDLE_CHECK_SECONDS
        queue = watcher.queue
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if queue.empty():
                try:
                    async with asyncio.timeout(min(remaining, wake)):
                        item = await queue.get()
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if watch.bookmarks and queue.empty() and loop.time() < deadline:
                        await resp.write(_bookmark(watch.rtype, store.rv))
                    continue
            else:
                item = queue.get_nowait()
            if item is CLOSE:
                break
            chunks = [encode(item)]
            closing = False
            while not queue.empty() and len(chunks) < MAX_BATCH:
                more = queue.get_nowait()
                if more is CLOSE:
                    closing = True
                    break
                chunks.append(encode(more))
            await resp.write(b"".join(chunks))
            if closing:
                break
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    finally:
        store.unwatch(watcher)
    return resp
