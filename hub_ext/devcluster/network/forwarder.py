"""The service proxy: forwards TCP connections to a Service to one of its ready endpoints.

As kube-proxy's userspace mode did, it listens on ``<clusterIP>:<port>`` for every TCP port of
every Service (and on ``127.0.0.1:<nodePort>`` for NodePort and LoadBalancer Services), and
copies bytes both ways to an endpoint picked round robin among the ``addresses`` (the ready ones)
of the Service's Endpoints; an endpoint that refuses the connection is skipped for the next one.
A connection while no endpoint is ready (or accepts) is closed at once. It reads
the API server's store directly, following every change of Services and Endpoints. UDP is not
forwarded; a port that cannot be bound (in use, or below 1024 without the privilege) is logged
and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from typing import Any

from hub_ext.devcluster.store import Change, Store

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Listen = tuple[str, int]  # address, port
BUFFER = 65536


class ServiceProxy:
    """Listeners for the Services of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.listeners: dict[Listen, tuple[asyncio.Server, tuple[str, str, Any]]] = {}
        self._counter = itertools.count()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.failed: dict[Listen, str] = {}

    def start(self) -> None:
        self.store.observers.append(self._observe)
        self._dirty.set()
        self._task = asyncio.create_task(self._loop(), name="devcluster-service-proxy")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.observers.remove(self._observe)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for server, _ in self.listeners.values():
            server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        self.listeners.clear()

    def _observe(self, change: Change) -> None:
        if change.key == "services":
            self._dirty.set()

    def wanted(self) -> dict[Listen, tuple[str, str, Any]]:
        """(address, port) -> (namespace, service, service port name or number)."""
        out: dict[Listen, tuple[str, str, Any]] = {}
        for (ns, name), svc in self.store.objects.get("services", {}).items():
            spec = svc.get("spec") or {}
            ip = spec.get("clusterIP")
            for port in spec.get("ports") or []:
                if (port.get("protocol") or "TCP") != "TCP":
                    continue
                ident = (ns, name, port.get("name") or port.get("port"))
                if ip and ip != "None":
                    out[(ip, int(port["port"]))] = ident
                if port.get("nodePort") and spec.get("type") in ("NodePort", "LoadBalancer"):
                    out[("127.0.0.1", int(port["nodePort"]))] = ident
        return out

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            wanted = self.wanted()
            for listen in [k for k in self.listeners if wanted.get(k) != self.listeners[k][1]]:
                server, _ = self.listeners.pop(listen)
                server.close()
            for listen, ident in wanted.items():
                if listen in self.listeners:
                    continue
                try:
                    server = await asyncio.start_server(
                        functools.partial(self._connect, ident=ident),
                        listen[0],
                        listen[1],
                        reuse_address=True,
                    )
                except OSError as exc:
                    if self.failed.get(listen) != str(exc):
                        log.warning(
                            "service %s/%s: cannot listen on %s:%s (%s); it is not reachable there",
                            ident[0],
                            ident[1],
                            listen[0],
                            listen[1],
                            exc,
                        )
                    self.failed[listen] = str(exc)
                    continue
                self.failed.pop(listen, None)
                self.listeners[listen] = (server, ident)

    def endpoints(self, ident: tuple[str, str, Any]) -> list[tuple[str, int]]:
        """The ready endpoints (pod IP, port) of the service port ``ident``, starting with the
        next one in round-robin order."""
        ns, name, port_id = ident
        svc = self.store.get("services", ns, name)
        endpoints = self.store.get("endpoints", ns, name)
        if svc is None or endpoints is None:
            return []
        port_name = ""
        for port in (svc.get("spec") or {}).get("ports") or []:
            if (port.get("name") or port.get("port")) == port_id:
                port_name = port.get("name") or ""
        choices = []
        for subset in endpoints.get("subsets") or []:
            numbers = [
                p["port"] for p in subset.get("ports") or [] if (p.get("name") or "") == port_name
            ]
            if not numbers:
                continue
            choices += [(a["ip"], int(numbers[0])) for a in subset.get("addresses") or []]
        if not choices:
            return []
        start = next(self._counter) % len(choices)
        return choices[start:] + choices[:start]

    async def _connect(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ident: tuple[str, str, Any],
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)
        try:
            for target in self.endpoints(ident):  # the next ready one that accepts
                try:
                    up_reader, up_writer = await asyncio.open_connection(*target)
                    break
                except OSError:
                    continue
            else:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
