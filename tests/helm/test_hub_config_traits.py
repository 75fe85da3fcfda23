"""Every setting the chart's hub config makes is a real, correctly typed trait of its class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_render import CI_VALUES, render
from hub_config import load_hub_config
from jupyterhub.app import JupyterHub
from jupyterhub.proxy import ConfigurableHTTPProxy
from kubespawner import KubeSpawner

from hub_ext.hub.auth.ldap import LabLDAPAuthenticator
from hub_ext.hub.auth.oidc import LabOIDCAuthenticator

# LabKubeSpawner's additions to KubeSpawner (agreed interface of the spawner).
SPAWNER_ADDITIONS = {
    "profiles_dir",
    "profile_policy_file",
    "slice_strategy",
    "queue_timeout",
    "admission_quotas",
    "reservation_claim_minutes",
}
# TraefikRedisProxy traits (jupyterhub-traefik-proxy 2.x), which the hub image installs.
TRAEFIK_REDIS_TRAITS = {
    "should_start",
    "redis_url",
    "redis_password",
    "kv_traefik_prefix",
    "traefik_api_url",
    "traefik_api_username",
    "traefik_api_password",
}


def _spawner_traits() -> set[str]:
    try:
        from hub_ext.hub.spawner.spawner import LabKubeSpawner
    except ImportError:
        return set(KubeSpawner.class_traits(config=True)) | SPAWNER_ADDITIONS
    return set(LabKubeSpawner.class_traits(config=True))


def _fullname(values: str) -> str:
    return "lab" if values == "all-options-values.yaml" else "gpulab-labhub"


@pytest.mark.parametrize("values", CI_VALUES)
def test_every_setting_names_a_trait(tmp_path: Path, values: str) -> None:
    c = load_hub_config(render(values), _fullname(values), tmp_path)
    classes: dict[str, set[str]] = {
        "JupyterHub": set(JupyterHub.class_traits(config=True)),
        "ConfigurableHTTPProxy": set(ConfigurableHTTPProxy.class_traits(config=True)),
        "TraefikRedisProxy": TRAEFIK_REDIS_TRAITS,
        "LabLDAPAuthenticator": set(LabLDAPAuthenticator.class_traits(config=True)),
        "LabOIDCAuthenticator": set(LabOIDCAuthenticator.class_traits(config=True)),
        "Authenticator": set(LabLDAPAuthenticator.class_traits(config=True)),
        "LabKubeSpawner": _spawner_traits(),
    }
    unknown = [
        f"{section}.{name}"
        for section in c
        for name in c[section]
        if name not in classes.get(section, set())
    ]
    assert unknown == []


@pytest.mark.parametrize(
    ("values", "cls", "section"),
    [
        ("all-options-values.yaml", LabLDAPAuthenticator, "LabLDAPAuthenticator"),
        ("postgres-values.yaml", LabLDAPAuthenticator, "LabLDAPAuthenticator"),
        ("oidc-values.yaml", LabOIDCAuthenticator, "LabOIDCAuthenticator"),
    ],
)
def test_authenticator_accepts_the_settings(
    tmp_path: Path, values: str, cls: Any, section: str
) -> None:
    """Instantiating the real authenticator validates every value's type."""
    c = load_hub_config(
        render(values),
        _fullname(values),
        tmp_path,
        env={"LABHUB_LDAP_BIND_DN": "cn=labhub", "LABHUB_LDAP_BIND_PASSWORD": "pw"},
    )
    authenticator = cls(config=c)
    for name, value in c[section].items():
        assert getattr(authenticator, name) == value, name
