"""The default ClusterRoles and ClusterRoleBindings a real API server bootstraps (the ones
that matter here), labelled ``kubernetes.io/bootstrapping: rbac-defaults``.

``admin``, ``edit`` and ``view`` carry their rules directly (a real cluster aggregates them from
``system:aggregate-to-*`` roles; aggregation is not emulated).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL = [*READ, *WRITE]

_VIEW_CORE = [
    "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
    "pods", "pods/log", "pods/status", "replicationcontrollers", "services",
    "services/status", "serviceaccounts", "events", "limitranges", "resourcequotas",
    "namespaces", "namespaces/status", "bindings",
]  # fmt: skip
_VIEW_GROUPS = {
    "apps": ["daemonsets", "deployments", "replicasets", "statefulsets"],
    "batch": ["cronjobs", "jobs"],
    "policy": ["poddisruptionbudgets"],
    "networking.k8s.io": ["ingresses", "networkpolicies"],
    "discovery.k8s.io": ["endpointslices"],
    "autoscaling": ["horizontalpodautoscalers"],
}
_EDIT_CORE = [
    "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "pods/eviction",
    "configmaps", "endpoints", "persistentvolumeclaims", "replicationcontrollers", "secrets",
    "serviceaccounts", "services", "services/proxy", "events",
]  # fmt: skip
NON_RESOURCE_DISCOVERY = [
    "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
    "/readyz", "/version", "/version/",
]  # fmt: skip
PUBLIC_INFO = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _view_rules() -> list[Obj]:
    rules: list[Obj] = [{"apiGroups": [""], "resources": _VIEW_CORE, "verbs": READ}]
    rules += [{"apiGroups": [g], "resources": r, "verbs": READ} for g, r in _VIEW_GROUPS.items()]
    return rules


def _edit_rules() -> list[Obj]:
    rules = _view_rules()
    rules.append({"apiGroups": [""], "resources": _EDIT_CORE, "verbs": ALL})
    rules.append({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]})
    rules.append({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]})
    rules += [
        {"apiGroups": [g], "resources": r + [f"{x}/scale" for x in r], "verbs": ALL}
        for g, r in _VIEW_GROUPS.items()
    ]
    return rules


def _admin_rules() -> list[Obj]:
    rules = _edit_rules()
    rules.append(
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["rolebindings", "roles"],
            "verbs": ALL,
        }
    )
    rules.append(
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["localsubjectaccessreviews"],
            "verbs": ["create"],
        }
    )
    return rules


def _role(name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    }


def _binding(name: str, role: str, groups: list[str]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups
        ],
    }


def cluster_roles() -> list[Obj]:
    self_reviews = [
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
            "verbs": ["create"],
        },
    ]
    return [
        _role(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        _role("admin", _admin_rules()),
        _role("edit", _edit_rules()),
        _role("view", _view_rules()),
        _role("system:discovery", [{"nonResourceURLs": NON_RESOURCE_DISCOVERY, "verbs": ["get"]}]),
        _role("system:public-info-viewer", [{"nonResourceURLs": PUBLIC_INFO, "verbs": ["get"]}]),
        _role("system:basic-user", self_reviews),
    ]


def cluster_role_bindings() -> list[Obj]:
    return [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            ["system:authenticated", "system:unauthenticated"],
        ),
    ]
