"""Reads the LabHub chart's values for the hub's configuration file.

The chart stores the values the hub needs in a Secret (``values.yaml``) mounted into the hub pod;
``LABHUB_CHART_VALUES`` names the file. The functions below turn those values into trait
settings, one dictionary per configurable class, so ``jupyterhub_config.py`` stays a short list
of assignments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_VALUES_PATH = "/usr/local/etc/labhub/secret/values.yaml"
_MISSING = object()


class ChartValues:
    """The chart values, looked up by dotted key (``"labhub.ldap.servers"``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ChartValues:
        """Read the values file (``LABHUB_CHART_VALUES`` or the chart's mount path)."""
        file = Path(path or os.environ.get("LABHUB_CHART_VALUES", DEFAULT_VALUES_PATH))
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SystemExit(
                f"LabHub: cannot read the chart values at {file} ({exc.strerror}); "
                "set LABHUB_CHART_VALUES to the mounted values.yaml"
            ) from None
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise SystemExit(f"LabHub: {file} must hold a mapping of chart values")
        return cls(data)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """Value at ``key``; without a default, a missing key stops the hub naming the key."""
        node: Any = self.data
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif default is not _MISSING:
                return default
            else:
                raise SystemExit(f"LabHub: chart value {key!r} is missing from the hub's values")
        return node


def apply(section: Any, settings: dict[str, Any]) -> None:
    """Assign every setting to a traitlets config section (``c.SomeClass``)."""
    for name, value in settings.items():
        setattr(section, name, value)


def hub_settings(v: ChartValues) -> dict[str, Any]:
    """Settings of ``c.JupyterHub``."""
    computed = v.get("computed")
    settings: dict[str, Any] = {
        "authenticator_class": AUTHENTICATORS[v.get("labhub.authenticator")],
        "spawner_class": "hub_ext.hub.spawner.spawner.LabKubeSpawner",
        "base_url": v.get("hub.baseUrl", "/"),
        "hub_ip": "0.0.0.0",
        "hub_port": computed["hubPort"],
        "hub_connect_url": f"http://{computed['hubServiceName']}:{computed['hubPort']}",
        "cleanup_servers": False,
        "concurrent_spawn_limit": v.get("hub.concurrentSpawnLimit"),
        "active_server_limit": v.get("hub.activeServerLimit"),
        "log_level": v.get("hub.logLevel", "INFO"),
        "cookie_secret_file": "/srv/jupyterhub/jupyterhub_cookie_secret",
        "authenticate_prometheus": True,
    }
    if v.get("hub.db.type") == "postgres":
        settings["db_url"] = v.get("hub.db.url")
    else:
        settings["db_url"] = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    if computed["proxyType"] == "traefik":
        settings["proxy_class"] = "traefik_redis"
    settings["extra_handlers"] = admin_view_handlers()
    return settings


def sqlite_wal(v: ChartValues) -> bool:
    """Whether the hub's SQLite database runs in write-ahead-log mode (``hub.db.sqliteWal``)."""
    return v.get("hub.db.type") == "sqlite-pvc" and bool(v.get("hub.db.sqliteWal", True))


def admin_view_handlers() -> list[Any]:
    """LabHub's admin-only overview (/hub/labhub/admin and /hub/labhub/api/overview)."""
    from hub_ext.hub.admin_view import handlers

    return handlers()


AUTHENTICATORS = {
    "ldap": "hub_ext.hub.auth.ldap.LabLDAPAuthenticator",
    "oidc": "hub_ext.hub.auth.oidc.LabOIDCAuthenticator",
}


def proxy_settings(v: ChartValues, env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Name of the proxy class section and its settings."""
    computed = v.get("computed")
    if computed["proxyType"] == "traefik":
        return "TraefikRedisProxy", {
            "should_start": False,
            "redis_url": computed["redisUrl"],
            "redis_password": env.get("CONFIGPROXY_AUTH_TOKEN", ""),
            "kv_traefik_prefix": "traefik",
            "traefik_api_url": f"http://{computed['fullname']}-traefik-api:8099",
            "traefik_api_username": "labhub",
            "traefik_api_password": env.get("CONFIGPROXY_AUTH_TOKEN", ""),
        }
    return "ConfigurableHTTPProxy", {"should_start": False, "api_url": computed["proxyApiUrl"]}


def trusted_proxies(v: ChartValues) -> list[str]:
    """Loopback, the chart's proxy pods (headless Service ``<fullname>-proxy-peers``) and the
    operator's ``hub.trustedProxies``."""
    peers = f"{v.get('computed.fullname')}-proxy-peers"
    return ["127.0.0.0/8", "::1/128", peers, *v.get("hub.trustedProxies", [])]


def ldap_settings(v: ChartValues, env: dict[str, str]) -> dict[str, Any]:
    """Settings of ``c.LabLDAPAuthenticator`` (ldapauthenticator's trait names plus LabHub's)."""
    ldap = v.get("labhub.ldap")
    groups = ldap["groups"]
    settings: dict[str, Any] = {
        "server_urls": [server["url"] for server in ldap["servers"]],
        "connect_timeout": float(ldap["connectTimeout"]),
        "receive_timeout": float(ldap["receiveTimeout"]),
        "server_skip_seconds": int(ldap["serverSkipSeconds"]),
        "user_search_base": ldap["userSearchBase"],
        "user_attribute": ldap["userAttribute"],
        "lookup_dn": not ldap["bindDnTemplate"],
        "bind_dn_template": list(ldap["bindDnTemplate"]),
        "search_filter": ldap["searchFilter"],
        "group_search_base": groups["searchBase"],
        "group_search_filter": groups["searchFilter"],
        "group_name_attribute": groups["nameAttribute"],
        "group_name_map": dict(groups["nameMap"]),
        "allowed_groups": list(groups["allowed"]),
        "admin_groups": set(groups["admin"]),
        "refresh_interval": int(ldap["refreshInterval"]),
        "failed_login_limit": int(ldap["failedLoginLimit"]),
        "failed_login_address_limit": int(ldap["failedLoginAddressLimit"]),
        "failed_login_spray_limit": int(ldap["failedLoginSprayLimit"]),
        "failed_login_window": int(ldap["failedLoginWindow"]),
        "trusted_proxies": trusted_proxies(v),
        "allow_all": not groups["allowed"],
    }
    ca_file = v.get("computed.ldapCaFile", "")
    if ca_file:
        settings["tls_ca_file"] = ca_file
    if env.get("LABHUB_LDAP_BIND_DN"):
        settings["lookup_dn_search_user"] = env["LABHUB_LDAP_BIND_DN"]
        settings["lookup_dn_search_password"] = env.get("LABHUB_LDAP_BIND_PASSWORD", "")
    return settings


def oidc_settings(v: ChartValues, env: dict[str, str]) -> dict[str, Any]:
    """Settings of ``c.LabOIDCAuthenticator`` (oauthenticator's names plus group_name_map)."""
    oidc = v.get("labhub.oidc")
    return {
        "client_id": oidc["clientId"],
        "client_secret": env.get("LABHUB_OIDC_CLIENT_SECRET", ""),
        "authorize_url": oidc["authorizeUrl"],
        "token_url": oidc["tokenUrl"],
        "userdata_url": oidc["userdataUrl"],
        "oauth_callback_url": oidc["callbackUrl"],
        "scope": list(oidc["scope"]),
        "username_claim": oidc["usernameClaim"],
        "claim_groups_key": oidc["groupsClaim"],
        "group_name_map": dict(oidc["groupNameMap"]),
        "allowed_groups": set(oidc["allowedGroups"]),
        "admin_groups": set(oidc["adminGroups"]),
        "manage_groups": True,
        "allow_all": not oidc["allowedGroups"],
    }


def spawner_settings(v: ChartValues) -> dict[str, Any]:
    """Settings of ``c.LabKubeSpawner`` (KubeSpawner's trait names plus LabHub's)."""
    su = v.get("singleuser")
    computed = v.get("computed")
    lh = v.get("labhub")
    release = computed["releaseName"]
    image = su["image"]
    settings: dict[str, Any] = {
        "namespace": computed["namespace"],
        "image": f"{image['name']}:{image['tag']}",
        "image_pull_policy": image.get("pullPolicy", "IfNotPresent"),
        "image_pull_secrets": list(computed.get("imagePullSecrets") or []),
        "uid": su["uid"],
        "gid": su["fsGid"],
        "fs_gid": su["fsGid"],
        "default_url": su["defaultUrl"],
        "start_timeout": su["startTimeout"],
        "cpu_limit": float(su["cpu"]["limit"]),
        "cpu_guarantee": float(su["cpu"]["guarantee"]),
        "mem_limit": str(su["memory"]["limit"]),
        "mem_guarantee": str(su["memory"]["guarantee"]),
        "common_labels": {
            "app.kubernetes.io/name": "labhub",
            "app.kubernetes.io/instance": release,
            "app.kubernetes.io/managed-by": "labhub-hub",
        },
        "extra_labels": {
            **su["extraLabels"],
            "app.kubernetes.io/component": "singleuser-server",
            "labhub.io/network-access-hub": "true",
        },
        "environment": dict(su.get("extraEnv") or {}),
        # LabHub adds the home volume itself (the claim below, mounted here)
        "home_mount_path": su["storage"]["homeMountPath"],
        "volumes": list(su.get("extraVolumes") or []),
        "volume_mounts": list(su.get("extraVolumeMounts") or []),
        "node_selector": dict(su["nodeSelector"]),
        "tolerations": list(su["extraTolerations"]),
        "allow_privilege_escalation": bool(su["allowPrivilegeEscalation"]),
        "automount_service_account_token": False,
        "pod_security_context": {
            "runAsNonRoot": True,
            "runAsUser": su["uid"],
            "runAsGroup": su["fsGid"],
            "fsGroup": su["fsGid"],
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "container_security_context": {
            "runAsNonRoot": True,
            "runAsUser": su["uid"],
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "profiles_dir": computed["profilesDir"],
        "profile_policy_file": computed["policyFile"],
        "slice_strategy": lh["slices"]["strategy"],
        "queue_timeout": int(lh["admission"]["queueTimeout"]),
        "room_order": list((lh.get("scheduling") or {}).get("roomOrder") or []),
        "fill_up_to": str((lh.get("scheduling") or {}).get("fillUpTo") or "90%"),
        "reservation_claim_minutes": int(lh["admission"]["reservationClaimMinutes"]),
        "admission_quotas": {
            "courses": dict(lh["admission"]["quotas"]["courses"]),
            "slice_types": dict(lh["admission"]["quotas"]["sliceTypes"]),
        },
    }
    if computed.get("userSchedulerName"):
        settings["scheduler_name"] = computed["userSchedulerName"]
    if computed.get("userPriorityClassName"):
        settings["priority_class_name"] = computed["userPriorityClassName"]
    storage = su["storage"]
    if storage["type"] == "dynamic":
        settings.update(
            {
                "storage_pvc_ensure": True,
                "storage_class": storage["dynamic"]["storageClass"],
                "storage_capacity": str(storage["capacity"]),
                "storage_access_modes": list(storage["dynamic"]["storageAccessModes"]),
                "pvc_name_template": storage["dynamic"]["pvcNameTemplate"],
            }
        )
    else:
        settings["storage_pvc_ensure"] = False
    return settings


def _gpu_metrics_args(gpu: dict[str, Any]) -> list[str]:
    """The GPU culler's Prometheus flags (``cull.gpu.prometheus``), none without a URL."""
    prometheus = gpu.get("prometheus") or {}
    if not prometheus.get("url"):
        return []
    return [
        f"--prometheus-url={prometheus['url']}",
        f"--prometheus-timeout={prometheus.get('timeout', 5)}",
        f"--gpu-idle-timeout={gpu.get('gpuIdleTimeout', 1800)}",
        f"--gpu-busy-percent={gpu.get('gpuBusyPercent', 5)}",
    ]


def services_and_roles(v: ChartValues, env: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hub services (idle cullers, metrics reader) and their scoped roles."""
    services: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    cull = v.get("cull")
    if cull["enabled"]:
        command = [
            "python3",
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={cull['timeout']}",
            f"--cull-every={cull['every']}",
            f"--concurrency={cull['concurrency']}",
        ]
        if cull["maxAge"]:
            command.append(f"--max-age={cull['maxAge']}")
        if cull["users"]:
            command.append("--cull-users")
        if cull["adminUsers"]:
            command.append("--cull-admin-users")
        if cull["removeNamedServers"]:
            command.append("--remove-named-servers")
        services.append({"name": "idle-culler", "command": command})
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if cull["users"]:
            scopes.append("admin:users")
        roles.append({"name": "idle-culler", "scopes": scopes, "services": ["idle-culler"]})
        gpu = cull.get("gpu", {})
        if gpu.get("enabled"):
            services.append(
                {
                    "name": "gpu-idle-culler",
                    "command": [
                        "python3",
                        "-m",
                        "hub_ext.services.gpu_culler",
                        f"--idle-timeout-when-queued={gpu['idleTimeoutWhenQueued']}",
                        f"--cull-every={gpu['every']}",
                        *_gpu_metrics_args(gpu),
                    ],
                }
            )
            roles.append(
                {
                    "name": "gpu-idle-culler",
                    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                    "services": ["gpu-idle-culler"],
                }
            )
    token = env.get("LABHUB_METRICS_TOKEN")
    if token:
        services.append({"name": "metrics-reader", "api_token": token})
        roles.append({"name": "metrics-reader", "scopes": ["read:metrics"], "services": ["metrics-reader"]})
    return services, roles
