"""The review APIs: SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectRulesReview (``kubectl auth can-i [--list]``), SelfSubjectReview (``kubectl auth
whoami``) and TokenReview. Reviews are answered, never stored.
"""

from __future__ import annotations

from typing import Any

from hub_ext.devcluster.api_errors import ApiError, bad_request
from hub_ext.devcluster.auth.rbac import Attributes, Authorizer
from hub_ext.devcluster.auth.tokens import UserInfo

Obj = dict[str, Any]
AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
#: (group, plural) -> kind of every review served
REVIEWS = {
    (AUTHORIZATION, "selfsubjectaccessreviews"): "SelfSubjectAccessReview",
    (AUTHORIZATION, "subjectaccessreviews"): "SubjectAccessReview",
    (AUTHORIZATION, "localsubjectaccessreviews"): "LocalSubjectAccessReview",
    (AUTHORIZATION, "selfsubjectrulesreviews"): "SelfSubjectRulesReview",
    (AUTHENTICATION, "selfsubjectreviews"): "SelfSubjectReview",
    (AUTHENTICATION, "tokenreviews"): "TokenReview",
}


def _attributes(user: UserInfo, spec: Obj, namespace: str | None) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        ns = resource.get("namespace") or ""
        if namespace is not None:
            if ns and ns != namespace:
                raise bad_request(
                    "spec.resourceAttributes.namespace must match the namespace of the request"
                )
            ns = namespace
        return Attributes(
            user,
            resource.get("verb") or "",
            ns,
            resource.get("group") or "",
            resource.get("resource") or "",
            resource.get("subresource") or "",
            resource.get("name") or "",
        )
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(non_resource, dict):
        return Attributes(
            user,
            non_resource.get("verb") or "",
            path=non_resource.get("path") or "",
            resource_request=False,
        )
    raise ApiError(
        422,
        "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be "
        "specified",
        reason="Invalid",
    )


def _subject(spec: Obj) -> UserInfo:
    extra = {k: tuple(v) for k, v in (spec.get("extra") or {}).items()}
    name = spec.get("user") or ""
    groups = tuple(spec.get("groups") or ())
    if not name and not groups:
        raise ApiError(
            422,
            'spec.user: Invalid value: "": at least one of user or group must be specified',
            reason="Invalid",
        )
    return UserInfo(name, groups, spec.get("uid") or "", extra)


def _rules(authorizer: Authorizer, user: UserInfo, namespace: str) -> Obj:
    resource_rules, non_resource_rules = [], []
    for rule in authorizer.rules_for(user, namespace):
        if rule.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            )
        else:
            entry = {
                "verbs": rule.get("verbs") or [],
                "apiGroups": rule.get("apiGroups") or [],
                "resources": rule.get("resources") or [],
            }
            if rule.get("resourceNames"):
                entry["resourceNames"] = rule["resourceNames"]
            resource_rules.append(entry)
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }


def review(
    kind: str, user: UserInfo, body: Any, authorizer: Authorizer, namespace: str = "", **extra: Any
) -> Obj:
    """Answer one review ``kind`` asked by ``user`` with ``body``."""
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a {kind} object")
    spec = body.get("spec") or {}
    group = AUTHENTICATION if kind in ("SelfSubjectReview", "TokenReview") else AUTHORIZATION
    out: Obj = {
        "kind": kind,
        "apiVersion": f"{group}/v1",
        "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None},
    }
    if kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.as_dict()}
        return out
    out["spec"] = spec
    if kind == "TokenReview":
        who = extra["authenticate"](spec.get("token") or "")
        audiences = spec.get("audiences") or []
        status: Obj = {"authenticated": who is not None, "audiences": audiences}
        if who is not None:
            status["user"] = who.as_dict()
        else:
            status["error"] = "invalid bearer token"
        out["status"] = status
        return out
    if kind == "SelfSubjectRulesReview":
        out["status"] = _rules(authorizer, user, spec.get("namespace") or "")
        return out
    subject = user if kind == "SelfSubjectAccessReview" else _subject(spec)
    attrs = _attributes(subject, spec, namespace if kind == "LocalSubjectAccessReview" else None)
    allowed = authorizer.allowed(attrs)
    out["status"] = {"allowed": allowed}
    if not allowed:
        out["status"]["reason"] = ""
    return out
