"""The audit log: one ``audit.k8s.io/v1`` Event (level Metadata, stage ResponseComplete) as a
JSON line per request, written to the file given with ``labhub devcluster up --audit-log``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hub_ext.devcluster.auth.rbac import Attributes
from hub_ext.devcluster.auth.tokens import UserInfo


def _micro(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """Appends events to ``path`` (created with mode 0600, its directory too)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None

    def _out(self) -> IO[str]:
        if self._file is None:
            self._file = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            self.path.chmod(0o600)
        return self._file

    def record(
        self,
        *,
        uri: str,
        user: UserInfo,
        impersonated: UserInfo | None,
        attrs: Attributes | None,
        verb: str,
        code: int,
        received: float,
        finished: float,
        source: str,
        user_agent: str,
        annotations: dict[str, str] | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": str(uuid.uuid4()),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": user.as_dict(),
            "sourceIPs": [source] if source else [],
            "userAgent": user_agent,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": _micro(received),
            "stageTimestamp": _micro(finished),
        }
        if impersonated is not None:
            event["impersonatedUser"] = impersonated.as_dict()
        if attrs is not None and attrs.resource_request:
            ref = {
                "resource": attrs.resource,
                "namespace": attrs.namespace,
                "name": attrs.name,
                "apiGroup": attrs.group,
                "subresource": attrs.subresource,
            }
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if annotations:
            event["annotations"] = annotations
        self._out().write(json.dumps(event, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
