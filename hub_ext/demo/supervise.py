"""The demo keeps its processes running: a crashed hub or slapd is restarted, nothing is orphaned.

:class:`Supervisor` checks each supervised part every ``interval`` seconds. When one has exited
it prints one line (what exited, with which code, that it is restarted), cleans up what the
dead process left behind (a killed JupyterHub leaves its proxy and its idle culler running),
starts the part again and prints a line once it answers. A part that crashes more than
``max_restarts`` times within ``window`` seconds is not restarted again: the supervisor says so
and stops the demo, so that what it printed stays true.

configurable-http-proxy is supervised by JupyterHub itself (it checks its proxy every few
seconds and starts it again); a crashed hub takes it down with it, and the new hub starts a new
one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]


@dataclass
class Part:
    """One supervised process: how to tell it runs, how to clean up after it, how to restart."""

    name: str
    exit_code: Callable[[], int | None]
    """None while it runs, else its exit code."""
    restart: Callable[[], Awaitable[None]]
    leftovers: Callable[[], list[psutil.Process]] = field(default=lambda: [])
    """Processes it started that outlive it (terminated before the restart)."""
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    """Restarts crashed parts of the demo (see the module docstring)."""

    def __init__(
        self,
        say: Callable[[str], None],
        terminate: Callable[[list[psutil.Process]], object],
        interval: float = 1.0,
        max_restarts: int = 5,
        window: float = 600.0,
    ) -> None:
        self.say = say
        self.terminate = terminate
        self.interval = interval
        self.max_restarts = max_restarts
        self.window = window
        self.parts: list[Part] = []
        self.gave_up: str = ""
        """Why the supervisor stopped restarting (then the demo stops)."""

    def add(self, part: Part) -> None:
        self.parts.append(part)

    async def run(self) -> str:
        """Watch until a part cannot be kept running; returns why (the demo then stops)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            for part in self.parts:
                code = part.exit_code()
                if code is None:
                    continue
                now = loop.time()
                part.restarts = [t for t in part.restarts if now - t < self.window]
                if len(part.restarts) >= self.max_restarts:
                    self.gave_up = (
                        f"{part.name} exited with code {code} {len(part.restarts) + 1} times "
                        f"within {self.window / 60:.0f} min; the LabHub demo stops"
                    )
                    self.say(self.gave_up)
                    return self.gave_up
                part.restarts.append(now)
                self.say(f"{part.name} exited with code {code}; restarting it")
                left = part.leftovers()
                if left:
                    self.say(f"stopping {len(left)} process(es) the old {part.name} left behind")
                    await asyncio.to_thread(self.terminate, left)
                try:
                    await part.restart()
                except Exception as exc:  # the next check tries again, within the limit
                    self.say(f"{part.name} did not start again: {exc}")
                    continue
                self.say(f"{part.name} is running again")


def alive_only(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out
