"""Round trip: chart values -> rendered Secret/ConfigMap -> the hub's real config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import one, render
from hub_config import load_hub_config

FULL = "gpulab-labhub"


def test_ldap_defaults(tmp_path: Path) -> None:
    c = load_hub_config(render("defaults-values.yaml"), FULL, tmp_path)
    assert c.JupyterHub.authenticator_class == "hub_ext.hub.auth.ldap.LabLDAPAuthenticator"
    assert c.JupyterHub.spawner_class == "hub_ext.hub.spawner.spawner.LabKubeSpawner"
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    assert c.JupyterHub.hub_connect_url == f"http://{FULL}-hub:8081"
    assert c.ConfigurableHTTPProxy.api_url == f"http://{FULL}-proxy-api:8001"
    assert c.ConfigurableHTTPProxy.should_start is False
    ldap = c.LabLDAPAuthenticator
    assert ldap.server_urls == ["ldaps://ldap-a.example.edu:636"]
    assert ldap.user_search_base == "ou=people,dc=example,dc=edu"
    assert ldap.lookup_dn is True
    assert ldap.connect_timeout == 3.0
    assert ldap.allow_all is True
    spawner = c.LabKubeSpawner
    assert spawner.namespace == "labhub"
    assert spawner.storage_class == "ceph-rbd"
    assert spawner.storage_capacity == "250Gi"
    assert spawner.slice_strategy == "mixed"
    assert spawner.queue_timeout == 1800
    assert spawner.admission_quotas == {"courses": {}, "slice_types": {}}
    assert spawner.profiles_dir == "/srv/labhub/profiles"
    assert spawner.scheduler_name == f"{FULL}-user-scheduler"
    assert spawner.priority_class_name == f"{FULL}-user"
    assert spawner.cpu_limit == 4.0
    assert spawner.mem_limit == "16G"


def test_every_option(tmp_path: Path) -> None:
    docs = render("all-options-values.yaml")
    c = load_hub_config(
        docs,
        "lab",
        tmp_path,
        env={
            "LABHUB_LDAP_BIND_DN": "cn=labhub,dc=example,dc=edu",
            "LABHUB_LDAP_BIND_PASSWORD": "pw",
        },
    )
    ldap = c.LabLDAPAuthenticator
    assert ldap.server_urls == [
        "ldaps://ldap-a.example.edu:636",
        "ldaps://ldap-b.example.edu:636",
        "ldap://ldap-legacy.example.edu:389",
    ]
    assert ldap.tls_ca_file == "/usr/local/etc/labhub/ldap-ca/ca.crt"
    assert ldap.lookup_dn_search_user == "cn=labhub,dc=example,dc=edu"
    assert ldap.lookup_dn_search_password == "pw"
    assert ldap.allowed_groups == ["dl-seminar-a", "dl-seminar-b", "gpu-lab-staff"]
    assert ldap.admin_groups == {"gpu-lab-staff"}
    assert ldap.group_name_map["cn=dl-seminar-a,ou=groups,dc=example,dc=edu"] == "dl-seminar-a"
    assert ldap.allow_all is False
    assert c.Authenticator.admin_users == {"labadmin"}
    spawner = c.LabKubeSpawner
    assert spawner.profiles_dir == "/srv/labhub/profiles-git/current/profiles"
    assert spawner.admission_quotas == {
        "courses": {"deep-learning": 25, "nlp": 25},
        "slice_types": {"1g.10gb": 40},
    }
    assert spawner.queue_timeout == 900
    assert spawner.room_order == ["room-a", "room-b"]
    assert spawner.fill_up_to == "90%"
    assert spawner.image_pull_secrets == ["registry-credentials"]
    assert spawner.node_selector == {"labhub.io/role": "gpu"}
    assert spawner.extra_labels["labhub.io/lab"] == "reference"
    # hub.extraConfig ran inside the config file.
    assert c.JupyterHub.template_vars == {"announcement": "Welcome to the GPU lab"}
    # Culling: jupyterhub-idle-culler and the GPU-aware rule, each with a scoped role.
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert "--cull-users" in services["idle-culler"]["command"]
    assert "--max-age=28800" in services["idle-culler"]["command"]
    assert "--idle-timeout-when-queued=900" in services["gpu-idle-culler"]["command"]
    gpu_culler = services["gpu-idle-culler"]["command"]
    assert "--prometheus-url=http://prometheus-operated.monitoring:9090" in gpu_culler
    assert "--gpu-idle-timeout=1200" in gpu_culler and "--gpu-busy-percent=10" in gpu_culler
    assert "--prometheus-timeout=3" in gpu_culler
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["idle-culler"]["services"] == ["idle-culler"]
    assert "admin:users" in roles["idle-culler"]["scopes"]
    assert roles["metrics-reader"]["scopes"] == ["read:metrics"]
    assert "admin:users" not in roles["gpu-idle-culler"]["scopes"]


def test_policy_file_holds_the_policy_values() -> None:
    docs = render("all-options-values.yaml")
    policy = yaml.safe_load(one(docs, "ConfigMap", "lab-hub")["data"]["policy.yaml"])
    assert policy["allowed_registries"] == ["registry.example.edu", "quay.io"]
    assert policy["max_memory"] == "32Gi"


def test_single_strategy_with_inline_profiles(tmp_path: Path) -> None:
    docs = render("single-strategy-values.yaml")
    c = load_hub_config(docs, FULL, tmp_path)
    assert c.LabKubeSpawner.slice_strategy == "single"
    assert c.LabLDAPAuthenticator.server_urls == [
        "ldaps://ldap-a.example.edu",
        "ldaps://ldap-b.example.edu",
    ]
    profiles = one(docs, "ConfigMap", f"{FULL}-profiles")
    profile = yaml.safe_load(profiles["data"]["deep-learning.yaml"])
    assert profile["slug"] == "deep-learning"
    assert profile["gpu"]["slice_types"] == ["1g.10gb"]
    hub = one(docs, "Deployment", f"{FULL}-hub")
    mounts = {
        m["name"]: m["mountPath"]
        for m in hub["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["profiles"] == c.LabKubeSpawner.profiles_dir


def test_postgres(tmp_path: Path) -> None:
    c = load_hub_config(render("postgres-values.yaml"), FULL, tmp_path)
    assert c.JupyterHub.db_url == "postgresql://labhub@db.example.edu:5433/labhub"
    assert c.LabLDAPAuthenticator.lookup_dn is False
    assert c.LabLDAPAuthenticator.bind_dn_template == ["uid={username},ou=people,dc=example,dc=edu"]


def test_traefik(tmp_path: Path) -> None:
    c = load_hub_config(render("traefik-values.yaml"), FULL, tmp_path)
    assert c.JupyterHub.proxy_class == "traefik_redis"
    assert c.TraefikRedisProxy.redis_url == f"redis://{FULL}-proxy-store:6379"
    assert c.TraefikRedisProxy.should_start is False
    assert c.TraefikRedisProxy.traefik_api_url == f"http://{FULL}-traefik-api:8099"


def test_oidc(tmp_path: Path) -> None:
    c = load_hub_config(
        render("oidc-values.yaml"), FULL, tmp_path, env={"LABHUB_OIDC_CLIENT_SECRET": "s3cret"}
    )
    assert c.JupyterHub.authenticator_class == "hub_ext.hub.auth.oidc.LabOIDCAuthenticator"
    oidc = c.LabOIDCAuthenticator
    assert oidc.client_id == "labhub"
    assert oidc.client_secret == "s3cret"
    assert oidc.claim_groups_key == "groups"
    assert oidc.allowed_groups == {"gpu-lab"}
    assert oidc.admin_groups == {"gpu-lab-staff"}
    assert oidc.group_name_map == {"/courses/deep-learning/seminar-a": "dl-seminar-a"}
    assert "LabLDAPAuthenticator" not in c
    assert c.LabKubeSpawner.slice_strategy == "shared"


@pytest.mark.parametrize(
    ("sets", "trait", "expected"),
    [
        (
            ("labhub.admission.quotas.courses.nlp=12",),
            "admission_quotas",
            {"courses": {"nlp": 12}, "slice_types": {}},
        ),
        (("singleuser.storage.dynamic.storageClass=rbd-fast",), "storage_class", "rbd-fast"),
        (("labhub.slices.strategy=shared",), "slice_strategy", "shared"),
        (("scheduling.userScheduler.enabled=false",), "scheduler_name", None),
        (("labhub.scheduling.fillUpTo=75%",), "fill_up_to", "75%"),
    ],
)
def test_single_value_changes_reach_the_spawner(
    tmp_path: Path, sets: tuple[str, ...], trait: str, expected: object
) -> None:
    c = load_hub_config(render("defaults-values.yaml", sets=sets), FULL, tmp_path)
    if expected is None:
        assert trait not in c.LabKubeSpawner
    else:
        assert c.LabKubeSpawner[trait] == expected


def test_missing_values_file_names_the_path(tmp_path: Path) -> None:
    docs = render("defaults-values.yaml")
    with pytest.raises(SystemExit, match="cannot read the chart values"):
        load_hub_config(docs, FULL, tmp_path, env={"LABHUB_CHART_VALUES": str(tmp_path / "nope")})


def test_hub_config_passthrough_and_user_environment(tmp_path: Path) -> None:
    sets = (
        "hub.config.JupyterHub.shutdown_on_logout=true",
        "hub.config.LabKubeSpawner.start_timeout=900",
        "singleuser.extraEnv.COURSE_DATA=/data/courses",
    )
    c = load_hub_config(render("defaults-values.yaml", sets=sets), FULL, tmp_path)
    assert c.JupyterHub.shutdown_on_logout is True
    assert c.LabKubeSpawner.start_timeout == 900
    assert c.LabKubeSpawner.environment == {"COURSE_DATA": "/data/courses"}


@pytest.fixture
def fresh_sqlite_settings() -> Any:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from hub_ext.hub import hubdb

    def reset() -> None:
        hubdb._settings.clear()
        if event.contains(Engine, "connect", hubdb.sqlite_pragmas):
            event.remove(Engine, "connect", hubdb.sqlite_pragmas)

    reset()
    yield hubdb
    reset()


def test_sqlite_runs_in_wal_mode_by_default(tmp_path: Path, fresh_sqlite_settings: Any) -> None:
    import sqlalchemy

    load_hub_config(render("defaults-values.yaml"), FULL, tmp_path)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/hub.sqlite")
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    engine.dispose()
    assert (mode, synchronous) == ("wal", 1)  # 1: NORMAL


def test_postgres_leaves_sqlite_alone(tmp_path: Path, fresh_sqlite_settings: Any) -> None:
    load_hub_config(render("postgres-values.yaml"), FULL, tmp_path)
    assert fresh_sqlite_settings._settings == {}
