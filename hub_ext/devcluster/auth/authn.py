"""Bearer-token authentication and impersonation, as the real API server does them.

A request without ``Authorization`` is ``system:anonymous`` (group ``system:unauthenticated``);
a token that is neither one of the static privileged tokens nor a valid ServiceAccount token of
a ServiceAccount (and pod) that still exists is answered ``401 Unauthorized``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.auth.rbac import Attributes, Authorizer, forbidden
from hub_ext.devcluster.auth.tokens import (
    ANONYMOUS,
    API_AUDIENCES,
    TokenSigner,
    UserInfo,
    service_account_user,
    split_service_account,
)
from hub_ext.devcluster.store import Store

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def authenticate(headers: Mapping[str, str], signer: TokenSigner, store: Store) -> UserInfo:
    header = headers.get("Authorization", "")
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    static = signer.static.get(token)
    if static is not None:
        return static
    claims = signer.verify(token)
    if claims is None or not set(claims.audiences) & set(API_AUDIENCES):
        raise unauthorized()
    account = store.get("serviceaccounts", claims.namespace, claims.name)
    if account is None or account["metadata"].get("uid") != claims.uid:
        raise unauthorized()
    if claims.pod is not None:
        pod = store.get("pods", claims.namespace, claims.pod[0])
        if pod is None or pod["metadata"].get("uid") != claims.pod[1]:
            raise unauthorized()
    user = service_account_user(claims.namespace, claims.name, claims.uid)
    if claims.pod is None:
        return user
    extra: dict[str, tuple[str, ...]] = {
        "authentication.kubernetes.io/pod-name": (claims.pod[0],),
        "authentication.kubernetes.io/pod-uid": (claims.pod[1],),
    }
    return UserInfo(user.name, user.groups, user.uid, extra)


def _all(headers: Any, name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    value = headers.get(name)
    return [value] if value else []


def impersonate(headers: Any, user: UserInfo, authorizer: Authorizer) -> UserInfo:
    """The impersonated user when the request asks for one and ``user`` may impersonate."""
    name = headers.get(IMPERSONATE_USER, "")
    groups = _all(headers, IMPERSONATE_GROUP)
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, tuple[str, ...]] = {}
    for key in headers:
        if key.lower().startswith(EXTRA_PREFIX):
            extra_key = key[len(EXTRA_PREFIX) :].lower()
            extra[extra_key] = tuple(_all(headers, key))
    if not name:
        if groups or uid or extra:
            raise ApiError(
                500,
                "requested [{}] without impersonating a user".format(
                    ", ".join(f"{IMPERSONATE_GROUP}: {g}" for g in groups) or IMPERSONATE_UID
                ),
                reason="InternalError",
            )
        return user
    checks: list[Attributes] = []
    account = split_service_account(name)
    if account is not None:
        checks.append(
            Attributes(user, "impersonate", account[0], "", "serviceaccounts", name=account[1])
        )
    else:
        checks.append(Attributes(user, "impersonate", "", "", "users", name=name))
    checks += [Attributes(user, "impersonate", "", "", "groups", name=g) for g in groups]
    if uid:
        checks.append(
            Attributes(user, "impersonate", "", "authentication.k8s.io", "uids", name=uid)
        )
    for key, values in extra.items():
        checks += [
            Attributes(user, "impersonate", "", "authentication.k8s.io", "userextras", key, v)
            for v in values
        ]
    for attrs in checks:
        if not authorizer.allowed(attrs):
            raise forbidden(attrs)
    if account is not None and not groups:
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{account[0]}"]
    if name != ANONYMOUS.name and "system:authenticated" not in groups:
        groups.append("system:authenticated")
    return UserInfo(name, tuple(groups), uid, extra)
