"""The emulated Kubernetes API server: plain HTTP on 127.0.0.1, real clients talk to it.

See ``docs/reference/devcluster-api.md`` for the resources, semantics and fault controls it
offers. Objects live in memory and are written to ``state_dir/objects/snapshot.json``
periodically and on :meth:`ApiServer.stop`, and loaded again by :meth:`ApiServer.start`.
The kubelet writes a pod's output to :func:`pod_log_path`, which ``pods/log`` serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_ext.devcluster import apply, protobuf
from hub_ext.devcluster.api_control import control
from hub_ext.devcluster.api_errors import ApiError, bad_request
from hub_ext.devcluster.api_faults import FaultInjector
from hub_ext.devcluster.api_logs import pod_log_path, serve_log
from hub_ext.devcluster.api_objects import Objects, decode_body
from hub_ext.devcluster.api_routing import (
    NOT_FOUND,
    flag,
    parse_path,
    serve_discovery,
    table_include,
    verb_of,
)
from hub_ext.devcluster.api_routing import json_response as _json
from hub_ext.devcluster.api_scale import scale
from hub_ext.devcluster.api_selectors import Selector, SelectorError
from hub_ext.devcluster.api_tables import table, wants_table
from hub_ext.devcluster.auth import credentials
from hub_ext.devcluster.auth.gate import Context, Gate, warning_header
from hub_ext.devcluster.auth.tokens import ANONYMOUS
from hub_ext.devcluster.controllers.disruption import evict
from hub_ext.devcluster.crds import CrdObserver
from hub_ext.devcluster.kubeconfig import write_kubeconfig
from hub_ext.devcluster.kubelet.exec import serve_exec
from hub_ext.devcluster.resources import Registry, ResourceType, resource_names
from hub_ext.devcluster.store import Store, write_snapshot
from hub_ext.devcluster.watch import WatchRequest, serve_watch

__all__ = ["ApiServer", "FaultInjector", "pod_log_path", "write_kubeconfig"]
log = logging.getLogger(__name__)
MAX_WATCH_SECONDS = 1800
TICK_SECONDS = 0.25


def _with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    for text in warnings:
        response.headers.add("Warning", warning_header(text))
    return response


class ApiServer:
    """An in-process Kubernetes API server for the local cluster emulator."""

    def __init__(
        self,
        state_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        audit_log: Path | None = None,
        secure_port: int = 0,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.host = host
        self.port = port
        self.secure_port = secure_port
        self.faults = FaultInjector()
        self.store = Store()
        self.registry = Registry()
        self.objects = Objects(self.store, self.registry)
        self.crds = CrdObserver(self.registry, self.store)
        self.store.observers.append(self.crds)
        self.gate = Gate(self.store, self.state_dir, token, audit_log)
        self.token = self.gate.signer.admin_token  # the kubeconfig's (cluster-admin) token
        self.bookmark_interval = 10.0
        self.snapshot_interval = 5.0
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._loaded = False
        self._saving: asyncio.Future[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def secure_url(self) -> str:
        """The HTTPS port (the cluster CA signs its certificate); kubectl and Helm use it."""
        return f"https://{self.host}:{self.secure_port}"

    @property
    def objects_dir(self) -> Path | None:
        return self.state_dir / "objects" if self.state_dir is not None else None

    async def start(self) -> None:
        if self._runner is not None:
            return
        if not self._loaded and self.objects_dir is not None:
            self.store.load(self.objects_dir)
            self.crds.load()
        self._loaded = True
        self.objects.ensure_system_namespaces()
        self.gate.bootstrap(self.objects)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        secure = web.TCPSite(
            runner,
            self.host,
            self.secure_port,
            reuse_address=True,
            ssl_context=self.gate.tls.server_context(),
        )
        try:
            await site.start()
            await secure.start()
        except OSError:
            await runner.cleanup()
            raise
        for started, attr in ((site, "port"), (secure, "secure_port")):
            server = started._server
            if server is not None and getattr(server, "sockets", None):
                setattr(self, attr, server.sockets[0].getsockname()[1])
        self._runner = runner
        credentials.register(self.url, self.gate.signer, self.secure_url)
        self._ticker = asyncio.create_task(self._tick(), name="devcluster-apiserver-tick")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._saving is not None:
            with contextlib.suppress(OSError):
                await self._saving  # a periodic snapshot still being written
            self._saving = None
        self.store.close_watches()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._save()
        self.gate.close()
        restarting = self._restarting
        if restarting is not None and restarting is not asyncio.current_task():
            self._restarting = None
            restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restarting

    async def restart(self) -> None:
        """Stop and start again on the same port; objects and resourceVersions are kept."""
        await self.stop()
        await self.start()

    def drop_watches(self) -> int:
        """End every open watch stream (clients resume from their last resourceVersion)."""
        return self.store.close_watches()

    def _save(self) -> None:
        if self.objects_dir is not None and self._loaded:
            self.store.save(self.objects_dir)

    async def _tick(self) -> None:
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.objects.reap(time.time())
            self.gate.bootstrap(self.objects)  # as the ServiceAccount controllers do
            directory = self.objects_dir
            due = time.monotonic() - last_save >= self.snapshot_interval
            if directory is not None and self.store.dirty and due:
                last_save = time.monotonic()
                saving = asyncio.ensure_future(
                    asyncio.to_thread(write_snapshot, directory, self.store.snapshot())
                )
                self._saving = saving
                try:
                    await asyncio.shield(saving)
                except OSError as exc:
                    log.warning("could not write the object snapshot to %s: %s", directory, exc)

    def schedule_restart(self) -> None:
        """Restart soon, outside the request that asked for it (used by the HTTP control)."""

        async def later() -> None:
            await asyncio.sleep(0.05)
            await self.restart()
            self._restarting = None

        if self._restarting is None:
            self._restarting = asyncio.create_task(later(), name="devcluster-apiserver-restart")

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (context ``labhub-devcluster``)."""
        return write_kubeconfig(
            path, self.secure_url, self.gate.ca_pem, self.token, namespace, "labhub-devcluster"
        )

    # -- HTTP ----------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        ctx = Context(ANONYMOUS, time.time())
        code = 500
        try:
            self.gate.begin(ctx, request)
            response = await self._handle(request, ctx)
            code = response.status
            return response
        except ApiError as exc:
            code = exc.code
            return _json(exc.status(), exc.code)
        finally:
            self.gate.finish(ctx, request, code)

    async def _handle(self, request: web.Request, ctx: Context) -> web.StreamResponse:
        try:
            parts = [p for p in request.path.split("/") if p]
            if not parts:
                return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz"]})
            if parts[0] == "_devcluster":
                return await control(self, request, parts[1:])
            if parts[0] in ("healthz", "readyz", "livez"):
                return web.Response(text="ok")
            found = serve_discovery(request, parts, self.registry)
            if found is not None:
                return found
            await protobuf.body_to_json(request)
            if request.method == "POST":
                answer = await self.gate.serve(request, ctx, decode_body(await request.read()))
                if answer is not None:
                    return _json(answer, 201)
            parsed = parse_path(parts, self.registry)
            if parsed is None:
                raise ApiError(404, NOT_FOUND)
            return await self._resource(request, *parsed, ctx)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    async def _resource(
        self,
        request: web.Request,
        rtype: ResourceType,
        ns: str,
        name: str | None,
        sub: str | None,
        ctx: Context | None = None,
    ) -> web.StreamResponse:
        query = request.query
        watching = flag(query.get("watch"))
        verb = verb_of(request.method, name, sub, watching)
        delay, error = self.faults.lookup(verb, resource_names(rtype), sub)
        if delay:
            await asyncio.sleep(delay)
        if error is not None:
            raise error
        if name is None:
            return await self._collection(request, rtype, ns, verb, ctx)
        if sub == "log":
            pod = self.objects.existing(rtype, ns, name)
            return await serve_log(request, self.store, self.state_dir, pod)
        if sub == "exec":
            return await serve_exec(request, self.objects.existing(rtype, ns, name))
        if sub == "scale":
            body = (request.headers.get("Content-Type", ""), await request.read())
            return _json(scale(self.objects, rtype, ns, name, request.method, body))
        if verb == "get":
            obj = self.objects.existing(rtype, ns, name)
            if sub is None and wants_table(request.headers.get("Accept", "")):
                include = query.get("includeObject") or "Metadata"
                return _json(table(rtype, [obj], obj["metadata"]["resourceVersion"], include))
            return _json(obj)
        raw = await request.read()
        if verb == "create" and sub == "eviction":
            return _json(evict(self.objects, ns, name, decode_body(raw)), 201)
        if verb == "create":
            if sub != "binding":
                where = f"{rtype.plural}/{sub}" if sub else f"a single {rtype.singular}"
                raise ApiError(405, f"POST is not allowed on {where}; POST to the collection")
            return _json(self.objects.bind(ns, name, decode_body(raw)), 201)
        if verb == "update":
            return _json(self.objects.update(rtype, ns, name, decode_body(raw), sub))
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "")
            if apply.is_apply(content_type):
                obj, code, warnings = apply.server_side_apply(
                    self.objects, partial(self.gate.admit, ctx), rtype, ns, name, sub, raw, query
                )
                return _with_warnings(_json(obj, code), warnings)
            return _json(self.objects.patch(rtype, ns, name, (content_type, raw), sub))
        options = self._delete_options(query, raw)
        return _json(self.objects.delete(rtype, ns, name, options))

    @staticmethod
    def _selector(rtype: ResourceType, ns: str, query: Any) -> Selector:
        try:
            return Selector.parse(
                ns if rtype.namespaced and ns else None,
                query.get("labelSelector"),
                query.get("fieldSelector"),
            )
        except SelectorError as exc:
            raise bad_request(str(exc)) from exc

    @staticmethod
    def _delete_options(query: Any, raw: bytes) -> dict[str, Any]:
        body = decode_body(raw) or {}
        if not isinstance(body, dict):
            raise bad_request("the body of a delete request must be DeleteOptions")
        options = dict(body)
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = query["gracePeriodSeconds"]
        return options

    async def _collection(
        self, request: web.Request, rtype: ResourceType, ns: str, verb: str, ctx: Context | None
    ) -> web.StreamResponse:
        query = request.query
        selector = self._selector(rtype, ns, query)
        if verb == "watch":
            since: int | None = None
            version = query.get("resourceVersion") or "0"
            initial = flag(query.get("sendInitialEvents"))
            try:
                since = None if initial else int(version) or None
            except ValueError as exc:
                raise bad_request(f"invalid resourceVersion {version!r}") from exc
            try:
                timeout = float(query.get("timeoutSeconds") or MAX_WATCH_SECONDS)
            except ValueError as exc:
                raise bad_request("timeoutSeconds must be a number") from exc
            watch = WatchRequest(
                rtype,
                selector,
                since,
                min(timeout, MAX_WATCH_SECONDS),
                flag(query.get("allowWatchBookmarks")),
                self.bookmark_interval,
                initial,
                table_include(request),
            )
            return await serve_watch(request, self.store, watch)
        if verb == "create":
            body = decode_body(await request.read())
            dry_run = query.get("dryRun") == "All"
            warnings = self.gate.admit(ctx, rtype.key, ns, body)
            created = self.objects.create(rtype, ns, body, dry_run)
            if not dry_run:
                self.gate.created(self.objects, rtype.key, created)
            return _with_warnings(_json(created, 201), warnings)
        if verb == "deletecollection":
            options = self._delete_options(query, await request.read())
            return _json(self.objects.delete_collection(rtype, selector, options))
        items = sorted(
            self.store.items(rtype.key, selector),
            key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]),
        )
        rv = str(self.store.rv)
        if wants_table(request.headers.get("Accept", "")):
            include = query.get("includeObject") or "Metadata"
            return _json(table(rtype, items, rv, include))
        return _json(
            {
                "kind": rtype.list_kind,
                "apiVersion": rtype.group_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )
