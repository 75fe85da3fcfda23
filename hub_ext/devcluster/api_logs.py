"""``pods/<name>/log``: the kubelet's per-pod log file, whole, tailed, limited or followed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_ext.devcluster.api_errors import bad_request
from hub_ext.devcluster.store import Store

FOLLOW_POLL_SECONDS = 0.2
FINISHED = ("Succeeded", "Failed")


def pod_log_path(state_dir: Path, namespace: str, name: str) -> Path:
    """Where the kubelet writes a pod's output and ``pods/log`` reads it from.

    ``state_dir/logs/<namespace>/<name>.log``: one file per pod, the output of all its
    containers appended to it.
    """
    return Path(state_dir) / "logs" / namespace / f"{name}.log"


def _int(query: Any, key: str) -> int | None:
    if not query.get(key):
        return None
    try:
        return int(query[key])
    except ValueError as exc:
        raise bad_request(f"{key} must be an integer, not {query[key]!r}") from exc


def _read(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


async def serve_log(
    request: web.Request, store: Store, state_dir: Path | None, pod: dict[str, Any]
) -> web.StreamResponse:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    if not spec.get("nodeName"):
        container = (spec.get("containers") or [{}])[0].get("name")
        raise bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
        )
    query = request.query
    tail, limit = _int(query, "tailLines"), _int(query, "limitBytes")
    path = pod_log_path(state_dir, ns, name) if state_dir is not None else None
    data = await asyncio.to_thread(_read, path, 0) if path is not None else b""
    offset = len(data)
    if tail is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail:]) if tail > 0 else b""
    if limit is not None:
        data = data[:limit]
    if (query.get("follow") or "").lower() not in ("true", "1") or path is None:
        return web.Response(body=data, content_type="text/plain", charset="utf-8")
    resp = web.StreamResponse()
    resp.content_type = "text/plain"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(data)
        uid = meta["uid"]
        while True:
            current = store.get("pods", ns, name)
            more = await asyncio.to_thread(_read, path, offset)
            if more:
                offset += len(more)
                await resp.write(more)
                continue
            gone = current is None or current["metadata"]["uid"] != uid
            if gone or (current.get("status") or {}).get("phase") in FINISHED:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        await resp.write_eof()
    return resp
