"""``pods/<name>/log``: a container's log file, whole, tailed, limited, timestamped or followed;
``previous`` reads the log of the container's last terminated instance."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_ext.devcluster.api_errors import bad_request
from hub_ext.devcluster.store import Store

FOLLOW_POLL_SECONDS = 0.2
_STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ", re.MULTILINE)
FINISHED = ("Succeeded", "Failed")


def pod_log_path(
    state_dir: Path, namespace: str, name: str, container: str, previous: bool = False
) -> Path:
    """Where the kubelet writes a container's output and ``pods/log`` reads it from.

    ``state_dir/logs/<namespace>/<pod>/<container>.log``, and ``<container>.previous.log`` for
    the instance before the last restart. Lines start with an RFC 3339 timestamp and a space
    (like the CRI log format), which ``pods/log`` removes unless ``timestamps=true``.
    """
    suffix = ".previous.log" if previous else ".log"
    return Path(state_dir) / "logs" / namespace / name / f"{container}{suffix}"


def _strip(data: bytes, timestamps: bool) -> bytes:
    return data if timestamps else _STAMP.sub(b"", data)


def _container(pod: dict[str, Any], query: Any) -> str:
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    names = [c.get("name") for c in spec.get("containers") or []]
    every = names + [c.get("name") for c in spec.get("initContainers") or []]
    wanted = query.get("container")
    if wanted:
        if wanted not in every:
            raise bad_request(f"container {wanted} is not valid for pod {name}")
        return str(wanted)
    if len(names) == 1:
        return str(names[0])
    raise bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


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


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


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
    container = _container(pod, query)
    previous = (query.get("previous") or "").lower() in ("true", "1")
    stamps = (query.get("timestamps") or "").lower() in ("true", "1")
    path = pod_log_path(state_dir, ns, name, container, previous) if state_dir else None
    if previous and (path is None or not path.exists()):
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    data = await asyncio.to_thread(_read, path, 0) if path is not None else b""
    offset = len(data)
    data = _strip(data, stamps)
    if tail is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail:]) if tail > 0 else b""
    if limit is not None:
        data = data[:limit]
    if (query.get("follow") or "").lower() not in ("true", "1") or path is None or previous:
        return web.Response(body=data, content_type="text/plain", charset="utf-8")
    resp = web.StreamResponse()
    resp.content_type = "text/plain"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write(data)
        uid = meta["uid"]
        inode = _inode(path)
        while True:
            current = store.get("pods", ns, name)
            now = _inode(path)
            inode = now if inode is None else inode
            restarted = now is not None and now != inode  # a new instance: this one ended
            more = b"" if restarted else await asyncio.to_thread(_read, path, offset)
            if more:
                offset += len(more)
                await resp.write(_strip(more, stamps))
                continue
            gone = current is None or current["metadata"]["uid"] != uid or restarted
            if gone or (current.get("status") or {}).get("phase") in FINISHED:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        await resp.write_eof()
    return resp
