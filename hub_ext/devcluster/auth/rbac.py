"""The RBAC authorizer: Role, ClusterRole, RoleBinding and ClusterRoleBinding as Kubernetes
evaluates them, and the ``Forbidden`` messages of the real API server.

Members of ``system:masters`` are allowed everything before RBAC is consulted, as the real API
server's privileged-group authorizer does. ClusterRole aggregation is not evaluated (the default
``admin``, ``edit`` and ``view`` roles are stored with their rules already filled in).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.auth.tokens import UserInfo, split_service_account
from hub_ext.devcluster.store import Store

Obj = dict[str, Any]
MASTERS = "system:masters"
ROLES = "roles.rbac.authorization.k8s.io"
CLUSTER_ROLES = "clusterroles.rbac.authorization.k8s.io"
ROLE_BINDINGS = "rolebindings.rbac.authorization.k8s.io"
CLUSTER_ROLE_BINDINGS = "clusterrolebindings.rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Attributes:
    """What one request asks to do (a resource request, or a non-resource ``path``)."""

    user: UserInfo
    verb: str
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(rule: Obj, attrs: Attributes) -> bool:
    combined = attrs.full_resource
    for value in rule.get("resources") or ():
        if value == "*" or value == combined:
            return True
        if attrs.subresource and value == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Obj, attrs: Attributes) -> bool:
    """One PolicyRule against the request, as rbac's RuleAllows does."""
    if not _matches(rule.get("verbs") or (), attrs.verb):
        return False
    if not attrs.resource_request:
        for url in rule.get("nonResourceURLs") or ():
            if url == "*" or url == attrs.path:
                return True
            if url.endswith("*") and attrs.path.startswith(url[:-1]):
                return True
        return False
    if not _matches(rule.get("apiGroups") or (), attrs.group):
        return False
    if not _resource_matches(rule, attrs):
        return False
    names = rule.get("resourceNames") or ()
    return not names or attrs.name in names


def subject_matches(subject: Obj, user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        found = split_service_account(user.name)
        namespace = subject.get("namespace") or binding_namespace
        return found is not None and found == (namespace, name)
    return False


class Authorizer:
    """Decides requests with the RBAC objects in ``store`` (read at each request)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", name)
        elif kind == "Role":
            role = self.store.get(ROLES, namespace, name)
        else:
            role = None
        return list((role or {}).get("rules") or ())

    def _bindings(self, namespace: str) -> Iterator[tuple[Obj, str]]:
        for binding in self.store.objects.get(CLUSTER_ROLE_BINDINGS, {}).values():
            yield binding, ""
        if namespace:
            for binding in self.store.objects.get(ROLE_BINDINGS, {}).values():
                if binding["metadata"].get("namespace") == namespace:
                    yield binding, namespace

    def rules_for(self, user: UserInfo, namespace: str) -> Iterator[Obj]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones included)."""
        for binding, ns in self._bindings(namespace):
            subjects = binding.get("subjects") or ()
            if any(subject_matches(s, user, ns) for s in subjects):
                yield from self._role_rules(binding.get("roleRef") or {}, ns)

    def allowed(self, attrs: Attributes) -> bool:
        if MASTERS in attrs.user.groups:
            return True
        return any(rule_allows(r, attrs) for r in self.rules_for(attrs.user, attrs.namespace))

    def check(self, attrs: Attributes) -> None:
        """Raise the API server's 403 unless the request is allowed."""
        if not self.allowed(attrs):
            raise forbidden(attrs)


def forbidden_reason(attrs: Attributes) -> str:
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user}" cannot {attrs.verb} resource "{attrs.full_resource}" '
        f'in API group "{attrs.group}" {where}'
    )


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """The ``Forbidden`` Status the real API server answers for a denied request."""
    text = reason or forbidden_reason(attrs)
    if not attrs.resource_request:
        return ApiError(403, f"forbidden: {text}")
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    message = (
        f'{qualified} "{attrs.name}" is forbidden: {text}'
        if attrs.name
        else f"{qualified} is forbidden: {text}"
    )
    details: Obj = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    return ApiError(403, message, details=details)
