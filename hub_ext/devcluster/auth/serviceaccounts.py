"""ServiceAccounts: the ``default`` account and ``kube-root-ca.crt`` of every namespace (the
jobs of kube-controller-manager's serviceaccount and root-ca-cert-publisher controllers), the
ServiceAccount admission of pods, and TokenRequest (``serviceaccounts/<name>/token``).
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any

from hub_ext.devcluster.api_errors import ApiError, Cause, invalid, not_found
from hub_ext.devcluster.auth.tokens import (
    API_AUDIENCES,
    DEFAULT_EXPIRATION,
    MAX_EXPIRATION,
    MIN_EXPIRATION,
    TokenSigner,
)
from hub_ext.devcluster.store import Store

Obj = dict[str, Any]
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 - a path
ROOT_CA = "kube-root-ca.crt"
#: What a kubelet asks for a projected serviceAccountToken without expirationSeconds.
PROJECTED_EXPIRATION = 3607
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"


def namespace_defaults(namespace: str, ca_pem: str) -> list[tuple[str, Obj]]:
    """(resource plural, object) the controllers create in a new namespace."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA,
            "annotations": {
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify "
                "the kube-apiserver when using internal endpoints such as the internal service "
                "IP or kubernetes.default.svc. No other usage is guaranteed across distributions "
                "of Kubernetes clusters."
            },
        },
        "data": {"ca.crt": ca_pem},
    }
    return [("serviceaccounts", account), ("configmaps", config_map)]


def _api_access_volume(name: str) -> Obj:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {
                    "serviceAccountToken": {
                        "expirationSeconds": PROJECTED_EXPIRATION,
                        "path": "token",
                    }
                },
                {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def admit_pod(store: Store, namespace: str, pod: Obj) -> None:
    """The ServiceAccount admission plugin: default the account, mount its token."""
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name
    account = store.get("serviceaccounts", namespace, name)
    if account is None:
        pod_name = (pod.get("metadata") or {}).get("name") or ""
        qualified = f'pods "{pod_name}"' if pod_name else "pods"
        raise ApiError(
            403,
            f"{qualified} is forbidden: error looking up service account {namespace}/{name}: "
            f'serviceaccount "{name}" not found',
            details={"kind": "pods", **({"name": pod_name} if pod_name else {})},
        )
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = account.get("automountServiceAccountToken", True)
    if automount is False:
        return
    containers = [
        c
        for key in ("initContainers", "containers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]
    if all(
        any(m.get("mountPath") == TOKEN_MOUNT for m in c.get("volumeMounts") or [])
        for c in containers
    ):
        return
    suffix = "".join(secrets.choice(_SUFFIX) for _ in range(5))
    volume = _api_access_volume(f"kube-api-access-{suffix}")
    spec.setdefault("volumes", []).append(volume)
    for container in containers:
        mounts = container.setdefault("volumeMounts", [])
        if not any(m.get("mountPath") == TOKEN_MOUNT for m in mounts):
            mounts.append({"name": volume["name"], "readOnly": True, "mountPath": TOKEN_MOUNT})


def _stamp(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_request(store: Store, signer: TokenSigner, namespace: str, name: str, body: Any) -> Obj:
    """Answer a TokenRequest for ServiceAccount ``namespace/name``."""
    account = store.get("serviceaccounts", namespace, name)
    if account is None:
        raise not_found("serviceaccounts", name)
    if not isinstance(body, dict):
        body = {}
    spec = body.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION if seconds is None else seconds
    kind = "TokenRequest"
    if not isinstance(seconds, int) or seconds < MIN_EXPIRATION:
        raise invalid(
            kind,
            name,
            [
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            ],
            "authentication.k8s.io",
        )
    if seconds > MAX_EXPIRATION:
        raise invalid(
            kind,
            name,
            [
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration larger than "
                    "2^32 seconds",
                )
            ],
            "authentication.k8s.io",
        )
    audiences = tuple(spec.get("audiences") or API_AUDIENCES)
    pod: tuple[str, str] | None = None
    bound = spec.get("boundObjectRef")
    if bound:
        if bound.get("kind") != "Pod":
            raise ApiError(
                400,
                f"cannot bind token to object of type {bound.get('kind')}: this cluster binds "
                "tokens to Pods only",
            )
        target = store.get("pods", namespace, bound.get("name", ""))
        if target is None:
            raise not_found("pods", bound.get("name", ""))
        uid = target["metadata"]["uid"]
        if bound.get("uid") and bound["uid"] != uid:
            raise ApiError(
                409,
                f"the UID in the bound object reference ({bound['uid']}) does not match the UID "
                f"in record. The object might have been deleted and then recreated",
                reason="Conflict",
            )
        pod = (target["metadata"]["name"], uid)
    token, expires = signer.issue(
        namespace, name, account["metadata"]["uid"], audiences, seconds, pod
    )
    out_spec = {"audiences": list(audiences), "expirationSeconds": seconds}
    if bound:
        out_spec["boundObjectRef"] = bound
    meta = dict(body.get("metadata") or {})
    meta.update(name=name, namespace=namespace)
    meta.setdefault("creationTimestamp", None)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": meta,
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": _stamp(expires)},
    }
