"""helm lint and helm template of the LabHub chart with the real helm binary."""

from __future__ import annotations

import base64

import pytest
import yaml
from chart_render import CHART, CI_DIR, CI_VALUES, find, one, render, run_helm

FULL = "gpulab-labhub"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"


def test_every_option_values_file_is_tested() -> None:
    assert set(CI_VALUES) >= {
        "defaults-values.yaml",
        "all-options-values.yaml",
        "single-strategy-values.yaml",
        "postgres-values.yaml",
        "traefik-values.yaml",
        "oidc-values.yaml",
    }


@pytest.mark.parametrize("values", CI_VALUES)
def test_helm_lint_strict(values: str) -> None:
    result = run_helm("lint", "--strict", str(CHART), "-f", str(CI_DIR / values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", CI_VALUES)
def test_helm_template_renders_core_components(values: str) -> None:
    docs = render(values)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    prefix = "lab" if values == "all-options-values.yaml" else FULL
    for kind, suffix in [
        ("Deployment", "hub"),
        ("Service", "hub"),
        ("Secret", "hub"),
        ("ConfigMap", "hub"),
        ("ServiceAccount", "hub"),
        ("Role", "hub"),
        ("RoleBinding", "hub"),
        ("Service", "proxy-public"),
        ("NetworkPolicy", "hub"),
        ("NetworkPolicy", "singleuser"),
        ("Deployment", "user-scheduler"),
        ("ConfigMap", "user-scheduler"),
        ("CronJob", "backup"),
        ("PriorityClass", "core"),
        ("PriorityClass", "user"),
        ("PodDisruptionBudget", "hub"),
        ("PodDisruptionBudget", "user-scheduler"),
    ]:
        assert (kind, f"{prefix}-{suffix}") in names, f"{kind} {prefix}-{suffix} missing"
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "labhub"


def test_defaults_use_chp_sqlite_and_no_optional_crds() -> None:
    docs = render("defaults-values.yaml")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "HTTPRoute", "Ingress"}
    one(docs, "Deployment", f"{FULL}-proxy")
    one(docs, "PersistentVolumeClaim", f"{FULL}-hub-db")
    hub = one(docs, "Deployment", f"{FULL}-hub")
    assert hub["spec"]["replicas"] == 1
    assert hub["spec"]["strategy"]["type"] == "Recreate"


def test_all_options_renders_optional_parts() -> None:
    docs = render("all-options-values.yaml")
    one(docs, "ServiceMonitor", "lab-hub")
    one(docs, "PrometheusRule", "lab")
    one(docs, "HTTPRoute", "lab")
    dashboard = one(docs, "ConfigMap", "lab-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"title": "LabHub"' in dashboard["data"]["labhub.json"]
    ingress = one(docs, "Ingress", "lab")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"secretName": "gpulab-tls", "hosts": ["gpulab.example.edu"]}]
    assert ingress["spec"]["rules"][0]["host"] == "gpulab.example.edu"
    hub = one(docs, "Deployment", "lab-hub")
    containers = {c["name"]: c for c in hub["spec"]["template"]["spec"]["containers"]}
    assert (
        "--repo=https://git.example.edu/gpu-lab/course-profiles.git"
        in (containers["git-sync"]["args"])
    )
    assert "--ref=winter-2026" in containers["git-sync"]["args"]


def test_postgres_drops_the_database_volume_and_passes_the_password() -> None:
    docs = render("postgres-values.yaml")
    assert not find(docs, "PersistentVolumeClaim")
    hub = one(docs, "Deployment", f"{FULL}-hub")
    env = {e["name"]: e for e in hub["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "labhub-db",
        "key": "password",
    }


def test_traefik_replaces_chp() -> None:
    docs = render("traefik-values.yaml")
    assert not find(docs, "Deployment", f"{FULL}-proxy")
    traefik = one(docs, "Deployment", f"{FULL}-traefik")
    assert traefik["spec"]["replicas"] == 2
    one(docs, "Deployment", f"{FULL}-proxy-store")
    public = one(docs, "Service", f"{FULL}-proxy-public")
    assert public["spec"]["selector"]["app.kubernetes.io/component"] == "traefik"


def test_checksum_annotation_follows_the_hub_values() -> None:
    sets = ("proxy.secretToken=" + "a" * 64, "hub.cookieSecret=" + "b" * 64)

    def checksums(*extra: str) -> dict[str, str]:
        docs = render("defaults-values.yaml", sets=sets + extra)
        hub = one(docs, "Deployment", f"{FULL}-hub")
        return hub["spec"]["template"]["metadata"]["annotations"]

    base = checksums()
    assert checksums() == base
    changed = checksums("labhub.admission.queueTimeout=600")
    assert changed["checksum/secret"] != base["checksum/secret"]
    assert changed["checksum/config"] == base["checksum/config"]
    policy = checksums("labhub.policy.maxCpu=16")
    assert policy["checksum/config"] != base["checksum/config"]


def test_given_secrets_are_used_and_generated_ones_are_hex() -> None:
    docs = render("defaults-values.yaml", sets=("proxy.secretToken=" + "c" * 64,))
    secret = one(docs, "Secret", f"{FULL}-hub")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["proxy.token"] == "c" * 64
    assert len(data["hub.cookie-secret"]) == 64
    int(data["hub.cookie-secret"], 16)
    assert "cookieSecret" not in yaml.safe_load(data["values.yaml"])["hub"]
