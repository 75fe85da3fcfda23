"""Kubeconfig files for the development cluster's API server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def write_kubeconfig(
    path: Path, server: str, ca_pem: str, token: str, namespace: str, user_name: str
) -> Path:
    """Write a kubeconfig (context ``labhub-devcluster``) for ``server`` with ``token``."""
    ca = base64.b64encode(ca_pem.encode()).decode()
    cluster = {"server": server, "certificate-authority-data": ca}
    user: dict[str, Any] = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "labhub-devcluster", "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [
            {
                "name": "labhub-devcluster",
                "context": {
                    "cluster": "labhub-devcluster",
                    "user": user_name,
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "labhub-devcluster",
        "preferences": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
