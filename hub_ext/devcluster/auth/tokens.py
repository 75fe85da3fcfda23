"""Signed ServiceAccount tokens (JWT, HS256) and the static tokens of privileged users.

A token carries the claims a real cluster puts in a bound ServiceAccount token: ``iss``,
``sub`` (``system:serviceaccount:<ns>:<name>``), ``aud``, ``exp``, ``iat``, ``nbf`` and
``kubernetes.io`` with the namespace, the ServiceAccount's name and uid and, for a token bound
to a pod, the pod's name and uid. The signing key lives in ``<state_dir>/auth/signing.key`` so
that tokens survive a restart of the cluster.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER, "https://kubernetes.default.svc")
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 2**32


@dataclass(frozen=True)
class UserInfo:
    """The authenticated identity of a request."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
#: A request without credentials on the plain-HTTP loopback port (Kubernetes' former insecure
#: port identity): privileged, for the emulator's tests and tools on this machine.
UNSECURED = UserInfo("system:unsecured", ("system:masters", "system:authenticated"))
ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
#: The emulator's own components, each with its real cluster identity (all privileged here).
COMPONENTS = {
    "scheduler": UserInfo("system:kube-scheduler", ("system:masters", "system:authenticated")),
    "controllers": UserInfo(
        "system:kube-controller-manager", ("system:masters", "system:authenticated")
    ),
    "volumes": UserInfo(
        "system:serviceaccount:kube-system:persistent-volume-binder",
        ("system:masters", "system:serviceaccounts", "system:authenticated"),
    ),
}


def node_user(node: str) -> UserInfo:
    return UserInfo(
        f"system:node:{node}", ("system:nodes", "system:masters", "system:authenticated")
    )


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid,
    )


def split_service_account(username: str) -> tuple[str, str] | None:
    """``(namespace, name)`` for ``system:serviceaccount:<ns>:<name>``, else None."""
    parts = username.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"] and parts[2] and parts[3]:
        return parts[2], parts[3]
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    """What a verified ServiceAccount token says."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    pod: tuple[str, str] | None = None  # (name, uid) of the pod it is bound to


class TokenSigner:
    """Issues and verifies ServiceAccount tokens, and keeps the static privileged tokens."""

    def __init__(self, key_dir: Path | None, admin_token: str | None = None) -> None:
        self.key = self._load_key(key_dir)
        self.static: dict[str, UserInfo] = {}
        self.admin_token = admin_token or self._stored(key_dir, "admin.token")
        self.static[self.admin_token] = ADMIN
        self.component_tokens: dict[str, str] = {}

    @staticmethod
    def _load_key(key_dir: Path | None) -> bytes:
        if key_dir is None:
            return secrets.token_bytes(32)
        path = key_dir / "signing.key"
        if path.exists():
            return bytes.fromhex(path.read_text().strip())
        key = secrets.token_bytes(32)
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(key.hex())
        path.chmod(0o600)
        return key

    @staticmethod
    def _stored(key_dir: Path | None, name: str) -> str:
        token = secrets.token_urlsafe(32)
        if key_dir is None:
            return token
        path = key_dir / name
        if path.exists():
            return path.read_text().strip()
        path.write_text(token)
        path.chmod(0o600)
        return token

    def component_token(self, user: UserInfo) -> str:
        """A static token for one of the emulator's own components (kept for the process)."""
        token = self.component_tokens.get(user.name)
        if token is None:
            token = self.component_tokens[user.name] = secrets.token_urlsafe(32)
            self.static[token] = user
        return token

    def issue(
        self,
        namespace: str,
        name: str,
        sa_uid: str,
        audiences: tuple[str, ...],
        seconds: int,
        pod: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token and its expiry (unix seconds)."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": issued + seconds,
            "iat": issued,
            "nbf": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": sa_uid},
            },
        }
        if pod is not None:
            claims["kubernetes.io"]["pod"] = {"name": pod[0], "uid": pod[1]}
        header = _b64(json.dumps({"alg": "HS256", "kid": "labhub-devcluster"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self.key, f"{header}.{body}".encode(), hashlib.sha256).digest())
        return f"{header}.{body}.{signature}", issued + seconds

    def verify(self, token: str, now: float | None = None) -> Claims | None:
        """The claims of a token this cluster signed and that has not expired, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(parts[2]), expected):
                return None
            claims = json.loads(_unb64(parts[1]))
            k8s = claims["kubernetes.io"]
            pod = k8s.get("pod")
            result = Claims(
                k8s["namespace"],
                k8s["serviceaccount"]["name"],
                k8s["serviceaccount"]["uid"],
                tuple(claims.get("aud") or ()),
                int(claims["exp"]),
                (pod["name"], pod["uid"]) if pod else None,
            )
        except (ValueError, KeyError, TypeError):
            return None
        if result.expires <= (time.time() if now is None else now):
            return None
        return result
