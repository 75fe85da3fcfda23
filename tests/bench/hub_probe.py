"""Measurements taken inside a hub process: loaded by the benchmark's ``jupyterhub_config.py``.

``install(events_path, profile_dir)`` (called while JupyterHub loads its config, inside its
event loop) records, one JSON object a line in ``events_path``:

* ``lag``: every 20 ms a timer notes how late it ran (the event loop's lag), in ms;
* ``spawn-start`` / ``spawn-end`` / ``spawn-error``: around ``User.spawn`` (the spawner's whole
  start, JupyterHub's own checks included);
* ``route-start`` / ``route-end``: around ``Proxy.add_user`` (the route to the new server).

With a ``profile_dir``, the signal SIGRTMIN+1 starts cProfile and
SIGRTMIN+2 stops it and writes
``<profile_dir>/hub.prof``: the benchmark profiles the burst only, not the hub's start-up.

:class:`InstantSpawner` is the floor's spawner: it answers at once with a tiny HTTP server in
the hub process, so what is left is JupyterHub's own cost of a spawn.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import signal
import time
from pathlib import Path
from typing import Any

from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner
from jupyterhub.user import User

LAG_PERIOD = 0.02
# JupyterHub answers SIGUSR1 itself (it logs its status)
PROFILE_START, PROFILE_STOP = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2


class InstantSpawner(Spawner):  # type: ignore[misc]
    """Serves ``200 ok`` on a loopback port of the hub process as soon as it is asked."""

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self._srv = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._srv.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self, now: bool = False) -> None:
        srv = getattr(self, "_srv", None)
        if srv is not None:
            srv.close()
            self._srv = None

    async def poll(self) -> int | None:
        return None if getattr(self, "_srv", None) is not None else 0


def install(events_path: str, profile_dir: str = "") -> None:
    loop = asyncio.get_running_loop()
    out = open(events_path, "a", buffering=1)  # noqa: SIM115 - open for the hub's lifetime

    def emit(event: str, **fields: Any) -> None:
        out.write(json.dumps({"t": time.time(), "ev": event, **fields}) + "\n")

    def tick(expected: float) -> None:
        now = loop.time()
        emit("lag", ms=round((now - expected) * 1000, 2))
        loop.call_at(now + LAG_PERIOD, tick, now + LAG_PERIOD)

    loop.call_soon(tick, loop.time())

    spawn = User.spawn

    async def timed_spawn(self: User, *args: Any, **kwargs: Any) -> Any:
        emit("spawn-start", user=self.name)
        try:
            result = await spawn(self, *args, **kwargs)
        except BaseException as err:
            emit("spawn-error", user=self.name, message=(str(err) or repr(err))[:300])
            raise
        emit("spawn-end", user=self.name)
        return result

    User.spawn = timed_spawn

    add_user = Proxy.add_user

    async def timed_add_user(self: Proxy, user: User, *args: Any, **kwargs: Any) -> Any:
        emit("route-start", user=user.name)
        result = await add_user(self, user, *args, **kwargs)
        emit("route-end", user=user.name)
        return result

    Proxy.add_user = timed_add_user

    if profile_dir:
        profile = cProfile.Profile()

        def start_profile() -> None:
            profile.enable()

        def stop_profile() -> None:
            profile.disable()
            profile.dump_stats(str(Path(profile_dir) / "hub.prof"))
            emit("profile-written")

        loop.add_signal_handler(PROFILE_START, start_profile)
        loop.add_signal_handler(PROFILE_STOP, stop_profile)
