"""One run of the class-start benchmark: one stack, one arrival pattern, a fresh hub.

Times come from three places on one clock (``time.time()``, one machine): the students' own
requests (login), the hub process (:mod:`hub_probe`: spawn, route, event-loop lag) and a pod
watch on the emulated cluster (pod created, admitted = scheduling gate lifted, running).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
from class_start_stacks import BenchHub, Login, login
from hub_probe import PROFILE_START, PROFILE_STOP
from kubernetes_asyncio.client import CoreV1Api

from hub_ext.adapters.ldap.reference_lab import lab_password
from hub_ext.devcluster.informer import Informer, Obj


@dataclass
class PodTimes:
    added: float
    gated: bool = False
    ungated: float | None = None
    running: float | None = None
    deleted: float | None = None
    pending: str = ""


class PodWatch:
    """When each student's pod was created, admitted (gate lifted) and running."""

    def __init__(self, core: CoreV1Api) -> None:
        self.pods: dict[str, PodTimes] = {}
        self.core = core
        self.informer = Informer(
            lambda **kw: core.list_namespaced_pod("default", **kw), self.seen, "bench"
        )

    def seen(self, kind: str, obj: Obj) -> None:
        now = time.time()
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        user = labels.get("hub.jupyter.org/username") or meta.get("name", "").removeprefix(
            "jupyter-"
        )
        if kind == "DELETED":
            if user in self.pods:
                self.pods[user].deleted = self.pods[user].deleted or now
            return
        rec = self.pods.setdefault(user, PodTimes(now))
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if spec.get("schedulingGates"):
            rec.gated = True
        elif rec.ungated is None:
            rec.ungated = now
        if status.get("phase") == "Running" and rec.running is None:
            rec.running = now
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                rec.pending = f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")

    async def clear(self) -> None:
        """Delete every pod of the namespace and wait until they are gone."""
        pods = (await self.core.list_namespaced_pod("default")).items
        for pod in pods:
            await self.core.delete_namespaced_pod(
                pod.metadata.name, "default", grace_period_seconds=0
            )

        async def gone() -> bool:
            return not (await self.core.list_namespaced_pod("default")).items

        deadline = time.monotonic() + 120
        while not await gone():
            if time.monotonic() > deadline:
                raise RuntimeError("pods of the last run are still there after 120 s")
            await asyncio.sleep(0.2)
        self.pods.clear()


class EventLog:
    """The hub probe's events, read as the file grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.events = path, 0, []  # type: ignore[var-annotated]

    def read(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with self.path.open() as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offset += len(complete.encode())
            self.events += [json.loads(line) for line in complete.splitlines() if line]
        return self.events

    def first(self, event: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for e in self.read():
            if e["ev"] == event:
                out.setdefault(e["user"], e["t"])
        return out

    def messages(self, event: str) -> dict[str, str]:
        return {e["user"]: e.get("message", "") for e in self.read() if e["ev"] == event}


@dataclass
class Run:
    stack: str
    pattern: str
    users: list[str]
    slices: int
    logins: list[Login] = field(default_factory=list)
    start_errors: list[str] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    cpu: float = 0.0
    events: EventLog | None = None
    pods: dict[str, PodTimes] = field(default_factory=dict)
    outcome: list[str] = field(default_factory=list)

    @property
    def spawns(self) -> bool:
        return self.pattern != "hubtraf"

    @property
    def expected_ready(self) -> int:
        if not self.spawns:
            return 0
        return len(self.users) if self.stack == "floor" else min(self.slices, len(self.users))

    def phase(self, name: str) -> list[float]:
        """Per served student: seconds spent in one phase of the hub-side spawn."""
        assert self.events is not None
        start, end = self.events.first("spawn-start"), self.events.first("route-end")
        route = self.events.first("route-start")
        out = []
        for user in end:
            pod = self.pods.get(user)
            if name == "total":
                out.append(end[user] - start[user])
            elif name == "route":
                out.append(end[user] - route[user])
            elif self.stack == "floor":
                if name == "answering":
                    out.append(route[user] - start[user])
            elif pod is None or pod.running is None:
                continue
            elif name == "created":
                out.append(max(0.0, pod.added - start[user]))
            elif name == "admitted" and self.stack == "labhub":
                out.append((pod.ungated or pod.added) - pod.added)
            elif name == "running":
                out.append(pod.running - (pod.ungated or pod.added))
            elif name == "answering":
                out.append(max(0.0, route[user] - pod.running))
        return out

    def lags(self) -> list[float]:
        assert self.events is not None
        t0, t1 = self.window
        return [e["ms"] for e in self.events.read() if e["ev"] == "lag" and t0 <= e["t"] <= t1]

    def errors(self) -> list[str]:
        assert self.events is not None
        out = [f"login {lg.error}" for lg in self.logins if lg.error] + self.start_errors
        out += [f"spawn {m}" for m in self.events.messages("spawn-error").values()]
        return out


async def run_pattern(
    hub: BenchHub, watch: PodWatch, run: Run, offsets: list[float], timeout: float
) -> Run:
    """Students arrive at ``offsets`` (seconds), log in and (unless hubtraf) press Start."""
    await hub.start()
    run.events = EventLog(hub.events)
    try:
        await asyncio.sleep(1.0)  # let the hub's start-up settle (first reflector lists)
        pid = hub.proc.pid
        cpu0, t0 = benchlib.cpu_seconds(pid), time.time()
        if hub.profile_dir:
            hub.signal(PROFILE_START)

        async def student(user: str, offset: float) -> None:
            await asyncio.sleep(offset)
            result = await login(hub, user, lab_password(user), home=not run.spawns)
            run.logins.append(result)
            if run.spawns and not result.error:
                status, text = await hub.start_server(user)
                if status not in (201, 202):
                    run.start_errors.append(f"start {status} {text[:120]}")

        tasks = [
            asyncio.create_task(student(u, o)) for u, o in zip(run.users, offsets, strict=True)
        ]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                done = all(t.done() for t in tasks)
                ready = len(run.events.first("route-end"))
                if done and ready >= run.expected_ready:
                    break
                await asyncio.sleep(0.1)
            else:
                run.start_errors.append(
                    f"timed out after {timeout:.0f} s: {len(run.events.first('route-end'))} "
                    f"of {run.expected_ready} servers ready"
                )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        run.cpu, run.window = benchlib.cpu_seconds(pid) - cpu0, (t0, time.time())
        if hub.profile_dir:
            hub.signal(PROFILE_STOP)
            await _wait_for(
                lambda: any(e["ev"] == "profile-written" for e in run.events.read()), 30
            )
        if run.pattern == "at-once" and run.stack != "floor":
            await _overflow(hub, watch, run)
        run.pods = dict(watch.pods)
    finally:
        await hub.stop()
        await watch.clear()
    return run


async def _wait_for(probe: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        await asyncio.sleep(0.2)
    return False


async def _overflow(hub: BenchHub, watch: PodWatch, run: Run) -> None:
    """What the students beyond the slices see: LabHub's queue, or stock's Pending pods."""
    assert run.events is not None
    ready = run.events.first("route-end")
    extra = [u for u in run.users if u not in ready]
    if not extra:
        return
    if run.stack == "labhub":
        lines = await asyncio.gather(*(hub.progress_line(u, "position") for u in extra))
        gated = sum(1 for u in extra if watch.pods.get(u) and watch.pods[u].gated)
        with_position = [line for line in lines if line]
        run.outcome.append(
            f"{len(extra)} students beyond the slices: {gated} pods queued behind a scheduling "
            f"gate, {len(with_position)} told their place in the queue"
        )
        if with_position:
            message = json.loads(with_position[-1].removeprefix("data:").strip()).get("message")
            run.outcome.append(f"the last one sees: {message}")
        return
    pending = [u for u in extra if watch.pods.get(u) and watch.pods[u].running is None]
    reason = next((watch.pods[u].pending for u in pending if watch.pods[u].pending), "")
    run.outcome.append(f"{len(pending)} pods Pending ({reason or 'not scheduled'})")
    await _wait_for(
        lambda: set(extra) <= set(run.events.messages("spawn-error")), hub.stock_start_timeout + 60
    )
    failed = run.events.messages("spawn-error")
    waited = [watch.pods[u].deleted - watch.pods[u].added for u in pending if watch.pods[u].deleted]
    if failed:
        run.outcome.append(
            f"{len(failed)} spawns failed after {benchlib.median(waited):.0f} s Pending "
            f"(start_timeout {hub.stock_start_timeout} s); the student reads: "
            f"{next(iter(failed.values()))[:160]}"
        )
