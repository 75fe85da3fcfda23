"""Pieces shared by the hubs that tests start: configuration snippets and the start itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import IO

VENV_BIN = Path(sys.executable).parent

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
