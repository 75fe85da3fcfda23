"""Every request of the emulated API server passes here: authentication, impersonation, RBAC,
the audit log, the review and TokenRequest endpoints and the admission of pods and namespaces.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.auth import podsecurity, serviceaccounts
from hub_ext.devcluster.auth.audit import AuditLog
from hub_ext.devcluster.auth.authn import authenticate, impersonate
from hub_ext.devcluster.auth.defaults import cluster_role_bindings, cluster_roles
from hub_ext.devcluster.auth.rbac import Attributes, Authorizer
from hub_ext.devcluster.auth.reviews import REVIEWS, review
from hub_ext.devcluster.auth.tls import ClusterTLS
from hub_ext.devcluster.auth.tokens import UNSECURED, TokenSigner, UserInfo
from hub_ext.devcluster.resources import BY_KEY
from hub_ext.devcluster.store import Store

Obj = dict[str, Any]
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
# A WebSocket upgrade (GET) of these needs ``create``, as the API server checks it since
# Kubernetes 1.30 (AuthorizePodWebsocketUpgradeCreatePermission): the same grant as SPDY's POST.
_CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")


def request_attributes(user: UserInfo, method: str, path: str, query: Any) -> Attributes:
    """The authorization attributes of a request, as the real RequestInfoFactory derives them."""
    parts = [p for p in path.split("/") if p]
    http_verb = {"HEAD": "get", "GET": "get", "POST": "create", "PUT": "update"}.get(
        method, method.lower()
    )
    prefix = 3 if parts[:1] == ["api"] else 4 if parts[:1] == ["apis"] else 0
    if not prefix or len(parts) < prefix:
        return Attributes(user, http_verb if method != "POST" else "post", path=path,
                          resource_request=False)  # fmt: skip
    group = parts[1] if prefix == 4 else ""
    rest = parts[prefix - 1 :]
    watching = rest[0] == "watch"
    if watching:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return Attributes(user, http_verb, path=path, resource_request=False)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    verb = http_verb
    if method in ("GET", "HEAD") and not name:
        watching = watching or (query.get("watch") or "").lower() in ("true", "1")
        verb = "watch" if watching else "list"
        selector = query.get("fieldSelector") or ""
        if selector.startswith("metadata.name=") and "," not in selector:
            name = selector[len("metadata.name=") :]
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    elif method == "GET" and resource == "pods" and sub in _CONNECT_SUBRESOURCES:
        verb = "create"
    return Attributes(user, verb, namespace, group, resource, sub, name, path)


@dataclass
class Context:
    """One request on its way through the gate (for the audit event)."""

    user: UserInfo
    received: float
    impersonated: UserInfo | None = None
    attrs: Attributes | None = None
    annotations: dict[str, str] = field(default_factory=dict)


class Gate:
    """Authentication, authorization, audit and admission for one API server."""

    def __init__(
        self,
        store: Store,
        state_dir: Path | None,
        admin_token: str | None = None,
        audit_log: Path | None = None,
    ) -> None:
        self.store = store
        self.key_dir = state_dir / "auth" if state_dir is not None else None
        self.signer = TokenSigner(self.key_dir, admin_token)
        self.authorizer = Authorizer(store)
        self.audit = AuditLog(audit_log) if audit_log is not None else None
        self.tls = ClusterTLS(self.key_dir)

    @property
    def ca_pem(self) -> str:
        return self.tls.ca_pem

    # -- per request ---------------------------------------------------------------------------
    def begin(self, ctx: Context, request: web.Request) -> None:
        """Authenticate and authorize ``request``, filling ``ctx`` as far as it gets."""
        if not request.secure and "Authorization" not in request.headers:
            ctx.user = UNSECURED  # the loopback plain-HTTP port, as the old insecure port
        else:
            ctx.user = authenticate(request.headers, self.signer, self.store)
        effective = impersonate(request.headers, ctx.user, self.authorizer)
        if effective is not ctx.user:
            ctx.impersonated = effective
        ctx.attrs = request_attributes(effective, request.method, request.path, request.query)
        self.authorizer.check(ctx.attrs)

    def finish(self, ctx: Context, request: web.Request, code: int) -> None:
        if self.audit is None:
            return
        attrs = ctx.attrs
        self.audit.record(
            uri=request.path_qs,
            user=ctx.user,
            impersonated=ctx.impersonated,
            attrs=attrs,
            verb=attrs.verb if attrs is not None else request.method.lower(),
            code=code,
            received=ctx.received,
            finished=time.time(),
            source=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            annotations=ctx.annotations,
        )

    def who(self, token: str) -> UserInfo | None:
        try:
            return authenticate({"Authorization": f"Bearer {token}"}, self.signer, self.store)
        except ApiError:
            return None

    async def serve(self, request: web.Request, ctx: Context, body: Any) -> Obj | None:
        """The answer to a review or TokenRequest, None for every other request."""
        attrs = ctx.attrs
        if attrs is None or not attrs.resource_request or request.method != "POST":
            return None
        user = ctx.impersonated or ctx.user
        kind = REVIEWS.get((attrs.group, attrs.resource))
        if kind is not None and not attrs.name:
            return review(kind, user, body, self.authorizer, attrs.namespace, authenticate=self.who)
        if (attrs.group, attrs.resource, attrs.subresource) == ("", "serviceaccounts", "token"):
            return serviceaccounts.token_request(
                self.store, self.signer, attrs.namespace, attrs.name, body
            )
        return None

    # -- admission -----------------------------------------------------------------------------
    def admit(self, ctx: Context | None, plural: str, namespace: str, body: Any) -> list[str]:
        """Mutate and validate a new object; the warnings to send back."""
        if plural != "pods" or not isinstance(body, dict):
            return []
        serviceaccounts.admit_pod(self.store, namespace, body)
        ns = self.store.get("namespaces", "", namespace) or {}
        labels = (ns.get("metadata") or {}).get("labels") or {}
        denial, warnings, audits = podsecurity.evaluate(labels, body.get("spec") or {})
        if ctx is not None and audits:
            ctx.annotations["pod-security.kubernetes.io/audit-violations"] = "; ".join(audits)
        if denial is not None:
            name = (body.get("metadata") or {}).get("name") or ""
            qualified = f'pods "{name}"' if name else "pods"
            raise ApiError(
                403,
                f"{qualified} is forbidden: {denial}",
                details={"kind": "pods", **({"name": name} if name else {})},
            )
        return warnings

    def created(self, objects: Any, plural: str, obj: Obj) -> None:
        """After a create: a new namespace gets its ``default`` ServiceAccount and root CA."""
        if plural == "namespaces":
            self.namespace_defaults(objects, obj["metadata"]["name"])

    def namespace_defaults(self, objects: Any, namespace: str) -> None:
        for plural, obj in serviceaccounts.namespace_defaults(namespace, self.ca_pem):
            if self.store.get(plural, namespace, obj["metadata"]["name"]) is None:
                objects.create(BY_KEY[plural], namespace, json.loads(json.dumps(obj)))

    def bootstrap(self, objects: Any) -> None:
        """Default ClusterRoles and bindings, and the defaults of every namespace."""
        for key, items in (
            ("clusterroles.rbac.authorization.k8s.io", cluster_roles()),
            ("clusterrolebindings.rbac.authorization.k8s.io", cluster_role_bindings()),
        ):
            for obj in items:
                if self.store.get(key, "", obj["metadata"]["name"]) is None:
                    objects.create(BY_KEY[key], "", obj)
        for ns in list(self.store.objects.get("namespaces", {}).values()):
            if not ns["metadata"].get("deletionTimestamp"):
                self.namespace_defaults(objects, ns["metadata"]["name"])

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


def warning_header(text: str) -> str:
    """A ``Warning`` header value (RFC 7234 299, as the API server sends them)."""
    return "299 - " + json.dumps(text)
