"""Request bodies in Kubernetes' protobuf encoding (``application/vnd.kubernetes.protobuf``).

kubectl's typed clients send protobuf for built-in kinds (``kubectl create namespace``,
``create token``, ``auth can-i``...). A body is the ``k8s\\x00`` magic and a
``runtime.Unknown`` envelope (typeMeta, raw); ``raw`` is decoded with the field numbers of the
kinds below (from Kubernetes' ``generated.proto`` files) into the JSON form the rest of the
API server handles. Other kinds answer ``415 Unsupported Media Type``; answers are always JSON,
which the clients accept.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from aiohttp import web

from hub_ext.devcluster.api_errors import ApiError

MAGIC = b"k8s\x00"
Field = tuple[str, str, bool]  # json name, type, repeated
S, I64, I32, B, BYTES, MAP, BMAP, TIME = (
    "string", "int64", "int32", "bool", "bytes", "map", "bytesmap", "time",
)  # fmt: skip
M = "meta"

SCHEMAS: dict[str, dict[int, Field]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", BYTES, False)},
    "TypeMeta": {1: ("apiVersion", S, False), 2: ("kind", S, False)},
    M: {
        1: ("name", S, False), 2: ("generateName", S, False), 3: ("namespace", S, False),
        5: ("uid", S, False), 6: ("resourceVersion", S, False), 7: ("generation", I64, False),
        10: ("deletionGracePeriodSeconds", I64, False), 11: ("labels", MAP, False),
        12: ("annotations", MAP, False), 13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", S, True),
    },
    "OwnerReference": {
        1: ("kind", S, False), 3: ("name", S, False), 4: ("uid", S, False),
        5: ("apiVersion", S, False), 6: ("controller", B, False),
        7: ("blockOwnerDeletion", B, False),
    },
    "Namespace": {1: ("metadata", M, False), 2: ("spec", "NamespaceSpec", False)},
    "NamespaceSpec": {1: ("finalizers", S, True)},
    "ServiceAccount": {
        1: ("metadata", M, False), 2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True),
        4: ("automountServiceAccountToken", B, False),
    },
    "ObjectReference": {
        1: ("kind", S, False), 2: ("namespace", S, False), 3: ("name", S, False),
        4: ("uid", S, False), 5: ("apiVersion", S, False),
    },
    "LocalObjectReference": {1: ("name", S, False)},
    "ConfigMap": {
        1: ("metadata", M, False), 2: ("data", MAP, False), 3: ("binaryData", BMAP, False),
        4: ("immutable", B, False),
    },
    "Secret": {
        1: ("metadata", M, False), 2: ("data", BMAP, False), 3: ("type", S, False),
        4: ("stringData", MAP, False), 5: ("immutable", B, False),
    },
    "TokenRequest": {1: ("metadata", M, False), 2: ("spec", "TokenRequestSpec", False)},
    "TokenRequestSpec": {
        1: ("audiences", S, True), 3: ("boundObjectRef", "BoundObjectReference", False),
        4: ("expirationSeconds", I64, False),
    },
    "BoundObjectReference": {
        1: ("kind", S, False), 2: ("apiVersion", S, False), 3: ("name", S, False),
        4: ("uid", S, False),
    },
    "TokenReview": {1: ("metadata", M, False), 2: ("spec", "TokenReviewSpec", False)},
    "TokenReviewSpec": {1: ("token", S, False), 2: ("audiences", S, True)},
    "SelfSubjectReview": {1: ("metadata", M, False)},
    "SelfSubjectAccessReview": {1: ("metadata", M, False), 2: ("spec", "SSARSpec", False)},
    "SSARSpec": {
        1: ("resourceAttributes", "ResourceAttributes", False),
        2: ("nonResourceAttributes", "NonResourceAttributes", False),
    },
    "SubjectAccessReview": {1: ("metadata", M, False), 2: ("spec", "SARSpec", False)},
    "LocalSubjectAccessReview": {1: ("metadata", M, False), 2: ("spec", "SARSpec", False)},
    "SARSpec": {
        1: ("resourceAttributes", "ResourceAttributes", False),
        2: ("nonResourceAttributes", "NonResourceAttributes", False),
        3: ("user", S, False), 4: ("groups", S, True), 6: ("uid", S, False),
    },
    "ResourceAttributes": {
        1: ("namespace", S, False), 2: ("verb", S, False), 3: ("group", S, False),
        4: ("version", S, False), 5: ("resource", S, False), 6: ("subresource", S, False),
        7: ("name", S, False),
    },
    "NonResourceAttributes": {1: ("path", S, False), 2: ("verb", S, False)},
    "SelfSubjectRulesReview": {1: ("metadata", M, False), 2: ("spec", "SSRRSpec", False)},
    "SSRRSpec": {1: ("namespace", S, False)},
    "Role": {1: ("metadata", M, False), 2: ("rules", "PolicyRule", True)},
    "ClusterRole": {1: ("metadata", M, False), 2: ("rules", "PolicyRule", True)},
    "PolicyRule": {
        1: ("verbs", S, True), 2: ("apiGroups", S, True), 3: ("resources", S, True),
        4: ("resourceNames", S, True), 5: ("nonResourceURLs", S, True),
    },
    "RoleBinding": {
        1: ("metadata", M, False), 2: ("subjects", "Subject", True),
        3: ("roleRef", "RoleRef", False),
    },
    "ClusterRoleBinding": {
        1: ("metadata", M, False), 2: ("subjects", "Subject", True),
        3: ("roleRef", "RoleRef", False),
    },
    "Subject": {
        1: ("kind", S, False), 2: ("apiGroup", S, False), 3: ("name", S, False),
        4: ("namespace", S, False),
    },
    "RoleRef": {1: ("apiGroup", S, False), 2: ("kind", S, False), 3: ("name", S, False)},
    "Time": {1: ("seconds", I64, False), 2: ("nanos", I32, False)},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", I64, False), 2: ("preconditions", "Preconditions", False),
        3: ("orphanDependents", B, False), 4: ("propagationPolicy", S, False),
        5: ("dryRun", S, True),
    },
    "Preconditions": {1: ("uid", S, False), 2: ("resourceVersion", S, False)},
}  # fmt: skip


class ProtobufError(ValueError):
    """A body that is not protobuf of a kind decoded here."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: Any) -> Any:
    if kind == S:
        return bytes(value).decode("utf-8")
    if kind in (I64, I32):
        return _signed(int(value))
    if kind == B:
        return bool(value)
    if kind == BYTES:
        return bytes(value)
    if kind == TIME:
        time = decode_message("Time", bytes(value))
        stamp = datetime.datetime.fromtimestamp(time.get("seconds", 0), datetime.UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return decode_message(kind, bytes(value))


def _map_entry(value: bytes, binary: bool) -> tuple[str, str]:
    key, val = "", "" if not binary else b""
    for number, _wire, item in _fields(value):
        if number == 1:
            key = bytes(item).decode("utf-8")
        elif number == 2:
            val = bytes(item) if binary else bytes(item).decode("utf-8")
    if binary:
        return key, base64.b64encode(val if isinstance(val, bytes) else b"").decode()
    return key, str(val)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMAS[name]
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        found = schema.get(number)
        if found is None:
            continue  # a field the emulator does not use (status, managedFields ...)
        json_name, kind, repeated = found
        if kind in (MAP, BMAP):
            key, val = _map_entry(bytes(value), kind == BMAP)
            out.setdefault(json_name, {})[key] = val
        elif repeated:
            out.setdefault(json_name, []).append(_scalar(kind, value))
        else:
            out[json_name] = _scalar(kind, value)
    return out


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body."""
    if not raw.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number")
    envelope = decode_message("Unknown", raw[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in SCHEMAS or kind[:1].islower():
        raise ProtobufError(f"kind {kind or '(none)'} is not decoded from protobuf here")
    obj = decode_message(kind, envelope.get("raw") or b"")
    obj["apiVersion"] = type_meta.get("apiVersion", "")
    obj["kind"] = kind
    return obj


async def body_to_json(request: web.Request) -> None:
    """Decode a protobuf body in place (see :mod:`hub_ext.devcluster.protobuf`); 415 else."""
    content_type = request.headers.get("Content-Type", "")
    if "protobuf" not in content_type and "cbor" not in content_type:
        return
    try:
        if "cbor" in content_type:
            raise ProtobufError("CBOR bodies are not decoded")
        obj = decode(await request.read())
    except ProtobufError as exc:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format ({content_type}): {exc} - "
            "accepted media types include: application/json, application/yaml, "
            "application/vnd.kubernetes.protobuf (for the kinds kubectl creates), "
            "application/merge-patch+json, application/strategic-merge-patch+json, "
            "application/json-patch+json, application/apply-patch+yaml",
        ) from exc
    request._read_bytes = json.dumps(obj).encode()  # what request.read() returns from now on
