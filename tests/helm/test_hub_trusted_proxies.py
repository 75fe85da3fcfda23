"""The chart trusts the forwarding headers of its own proxy pods and the operator's hops only."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_render import one, render
from hub_config import load_hub_config

from hub_ext.hub.auth.ldap import LabLDAPAuthenticator

FULL = "gpulab-labhub"


@pytest.mark.parametrize("proxy", ["chp", "traefik"])
def test_the_peers_service_lists_the_proxy_pods(proxy: str) -> None:
    docs = render("defaults-values.yaml", sets=(f"proxy.type={proxy}",))
    peers = one(docs, "Service", f"{FULL}-proxy-peers")
    assert peers["spec"]["clusterIP"] == "None"
    component = "proxy" if proxy == "chp" else "traefik"
    pods = one(docs, "Deployment", f"{FULL}-{component}")
    assert peers["spec"]["selector"] == pods["spec"]["selector"]["matchLabels"]


def test_defaults_trust_loopback_and_the_proxy_pods_only(tmp_path: Path) -> None:
    c = load_hub_config(render("defaults-values.yaml"), FULL, tmp_path)
    ldap = c.LabLDAPAuthenticator
    assert ldap.trusted_proxies == ["127.0.0.0/8", "::1/128", f"{FULL}-proxy-peers"]
    assert (ldap.failed_login_limit, ldap.failed_login_window) == (5, 300)
    assert (ldap.failed_login_address_limit, ldap.failed_login_spray_limit) == (100, 10)
    # The values are valid settings of the class.
    auth = LabLDAPAuthenticator(config=c)
    assert auth.proxies.names == (f"{FULL}-proxy-peers",)


def test_operator_hops_are_added(tmp_path: Path) -> None:
    c = load_hub_config(render("all-options-values.yaml"), "lab", tmp_path)
    ldap = c.LabLDAPAuthenticator
    assert ldap.trusted_proxies[-2:] == [
        "10.42.0.0/16",
        "ingress-nginx-controller.ingress-nginx.svc",
    ]
    assert (ldap.failed_login_address_limit, ldap.failed_login_spray_limit) == (150, 8)
