"""What the tests share: free loopback ports, waiting for a condition, and starting hubs.

Test directories import it as ``from support import ...`` (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` lives there).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Await ``probe`` until it returns something truthy and return that; fail after ``timeout``
    seconds with "timed out waiting for <what>". Keep timeouts generous: the machine may be busy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


MEMORY_PROXY = '''
from jupyterhub.proxy import Proxy


class RouteMemoryProxy(Proxy):
    """Keeps routes in memory: no proxy process, the hub serves /hub/ itself."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.routes = {}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)
'''


async def start_jupyterhub(
    work: Path, env: dict[str, str], log: IO[bytes]
) -> asyncio.subprocess.Process:
    """``jupyterhub -f jupyterhub_config.py`` in ``work`` from this virtualenv, in a process
    group of its own (so that stopping it stops its children), output to ``log``."""
    return await asyncio.create_subprocess_exec(
        str(VENV_BIN / "jupyterhub"),
        "-f",
        "jupyterhub_config.py",
        cwd=work,
        env={**env, "PATH": f"{VENV_BIN}:{env['PATH']}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
