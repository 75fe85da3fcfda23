"""``pods/<name>/exec`` over WebSocket, in the channel protocols kubectl and client libraries use.

``v5.channel.k8s.io`` (kubectl 1.30+) and ``v4.channel.k8s.io`` (kubernetes_asyncio, the Python
client): every binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 error (a
``Status`` with the exit code when the command ends), 4 resize (ignored); v5 adds 255, the
client's "close this channel" (``[255, 0]`` ends stdin). The command runs in the container's
mount namespace and working directory with the container's environment. ``tty=true`` is
accepted, but no terminal is allocated (the output is a pipe). SPDY is not served; kubectl uses
WebSocket first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from hub_ext.devcluster.api_errors import ApiError, bad_request
from hub_ext.devcluster.kubelet import runtime

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def _container(pod: dict[str, Any], wanted: str | None) -> str:
    name = pod["metadata"]["name"]
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if not wanted:
        default = (pod["metadata"].get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container"
        )
        if default in names or len(names) == 1:
            return str(default if default in names else names[0])
        choices = " ".join(str(n) for n in names)
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{choices}]"
        )
    every = names + [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
    if wanted not in every:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _pid(pod: dict[str, Any], container: str) -> int:
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []
    ):
        if entry.get("name") == container and "running" in (entry.get("state") or {}):
            cid = str(entry.get("containerID") or "")
            if cid.startswith("devcluster://") and cid[13:].isdigit():
                return int(cid[13:])
    raise bad_request(
        f'unable to upgrade connection: container not found ("{container}")'
        if pod.get("spec", {}).get("nodeName")
        else f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
        "ContainerCreating"
    )


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _status(code: int, command: list[str]) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


async def serve_exec(request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
    query = request.query
    command = query.getall("command", [])
    if not command:
        raise bad_request("you must specify at least 1 command")
    container = _container(pod, query.get("container"))
    pid = _pid(pod, container)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(
            400,
            f"Upgrade request required: pods/exec speaks WebSocket ({', '.join(PROTOCOLS)}) only",
        )
    want = {
        k: (query.get(k) or "").lower() in ("true", "1")
        for k in ("stdin", "stdout", "stderr", "tty")
    }
    ws = web.WebSocketResponse(protocols=PROTOCOLS, heartbeat=None)
    await ws.prepare(request)
    try:
        proc = await asyncio.create_subprocess_exec(
            *runtime.enter_argv(pid, command),
            stdin=asyncio.subprocess.PIPE if want["stdin"] else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if want["tty"] else asyncio.subprocess.PIPE,
            env=_environ(pid) or None,
            start_new_session=True,
        )
    except OSError as exc:
        await ws.send_bytes(
            bytes([ERROR])
            + json.dumps(
                {
                    "metadata": {},
                    "status": "Failure",
                    "message": str(exc),
                    "reason": "InternalError",
                }
            ).encode()
        )
        await ws.close()
        return ws

    async def pump(stream: asyncio.StreamReader | None, channel: int, wanted: bool) -> None:
        if stream is None:
            return
        while chunk := await stream.read(32768):
            if wanted and not ws.closed:
                await ws.send_bytes(bytes([channel]) + chunk)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and proc.stdin is not None and data:
                proc.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
            elif channel == CLOSE and data[:1] == bytes([STDIN]) and proc.stdin is not None:
                proc.stdin.close()
        if proc.stdin is not None:
            proc.stdin.close()

    feeder = asyncio.create_task(feed())
    try:
        await asyncio.gather(
            pump(proc.stdout, STDOUT, want["stdout"] or want["tty"]),
            pump(proc.stderr, STDERR, want["stderr"]),
        )
        code = await proc.wait()
        code = 128 - code if code < 0 else code
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + _status(code, command))
            await ws.close()
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return ws
