"""Validating rendered manifests against Kubernetes' OpenAPI schemas (kubernetes-validate).

kubernetes-validate ships strict JSON schemas for each Kubernetes minor version; its own
``validate()`` re-reads the large definitions file on every call, so this module builds one
validator per (version, kind) and reuses it. Custom resources that are not part of Kubernetes
(ServiceMonitor, PrometheusRule, HTTPRoute, VolumeSnapshot) are checked against the hand-written
subsets of their CRD schemas in ``crd_schemas/``.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35")
CRD_DIR = Path(__file__).parent / "crd_schemas"
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.yaml",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.yaml",
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): "volumesnapshot-snapshot-v1.yaml",
}


def _schema_dir(version: str) -> Any:
    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return base.joinpath(f"v{version}.0-local-strict")


def shipped_versions() -> list[str]:
    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    found = {
        m.group(1)
        for p in base.iterdir()
        if (m := re.match(r"v(\d+\.\d+)\.0-local-strict$", p.name))
    }
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


@functools.cache
def _registry(version: str) -> Registry:
    definitions = json.loads(_schema_dir(version).joinpath("_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@functools.cache
def _validator(version: str, api_version: str, kind: str) -> jsonschema.Validator:
    crd = CRD_SCHEMAS.get((api_version, kind))
    if crd is not None:
        schema = yaml.safe_load((CRD_DIR / crd).read_text())
        return jsonschema.Draft202012Validator(schema)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    file = _schema_dir(version).joinpath(f"{kind.lower()}-{group_version}.json")
    if not file.is_file():
        raise LookupError(f"no schema for {api_version} {kind} in Kubernetes {version}")
    schema = json.loads(file.read_text())
    return jsonschema.Draft202012Validator(schema, registry=_registry(version))


def errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Schema violations of one manifest for one Kubernetes version (empty when valid)."""
    validator = _validator(version, manifest["apiVersion"], manifest["kind"])
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]
