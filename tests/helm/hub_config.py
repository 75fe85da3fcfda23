"""Loading the hub's real configuration file with the values a chart rendering produced."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

from chart_render import one
from traitlets.config import Config, PyFileConfigLoader


def mount_hub_files(docs: list[dict[str, Any]], fullname: str, root: Path) -> Path:
    """Write the hub ConfigMap and Secret the way the hub pod mounts them; return the config dir."""
    configmap = one(docs, "ConfigMap", f"{fullname}-hub")
    secret = one(docs, "Secret", f"{fullname}-hub")
    config_dir = root / "config"
    config_dir.mkdir()
    for key in ("jupyterhub_config.py", "labhub_chart.py"):
        (config_dir / key).write_text(configmap["data"][key])
    secret_dir = root / "secret"
    secret_dir.mkdir()
    (secret_dir / "values.yaml").write_bytes(base64.b64decode(secret["data"]["values.yaml"]))
    return config_dir


def load_hub_config(
    docs: list[dict[str, Any]], fullname: str, root: Path, env: dict[str, str] | None = None
) -> Config:
    """Load jupyterhub_config.py with traitlets, as JupyterHub does, and return the config."""
    config_dir = mount_hub_files(docs, fullname, root)
    secret = one(docs, "Secret", f"{fullname}-hub")
    tokens = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    environ = {
        "LABHUB_CHART_VALUES": str(root / "secret" / "values.yaml"),
        # with hub.existingSecret the tokens live in a Secret the operator made
        "CONFIGPROXY_AUTH_TOKEN": tokens.get("proxy.token", "token-from-existing-secret"),
        "LABHUB_METRICS_TOKEN": tokens.get("metrics.token", "token-from-existing-secret"),
        **(env or {}),
    }
    saved = dict(os.environ)
    saved_path = list(sys.path)
    os.environ.update(environ)
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(config_dir))
        return loader.load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.path[:] = saved_path
        sys.modules.pop("labhub_chart", None)
