"""The chart's Grafana dashboard and alert rules: JSON parses, every query names a real metric,
rules have the structure Prometheus loads (promtool is not available, so it is checked here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jupyterhub.metrics
import pytest
import yaml
from chart_render import CHART, NAMESPACE, render, render_error
from prometheus_client.metrics import MetricWrapperBase

from hub_ext.hub import metrics

DASHBOARD = CHART / "files" / "grafana" / "labhub.json"
RULES = CHART / "files" / "prometheus" / "labhub-rules.yaml"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
}
#: Metrics of other exporters that the LabHub panels and rules may use.
EXTERNAL = {"up", "kube_cronjob_status_last_successful_time"}
METRIC = re.compile(r"\b((?:labhub|jupyterhub|kube)_[a-z0-9_]+|up(?=\{))")
DURATION = re.compile(r"^[0-9]+[smhd]$")


def exported_names(module: ModuleType) -> set[str]:
    names: set[str] = set()
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            base = value._name
            names |= {base + s for s in SUFFIXES.get(value._type, ("",))}
    return names


KNOWN = exported_names(metrics) | exported_names(jupyterhub.metrics) | EXTERNAL


def check_expr(expr: str) -> None:
    used = set(METRIC.findall(expr))
    assert used, f"expression names no metric: {expr}"
    unknown = used - KNOWN
    assert not unknown, f"unknown metric(s) {sorted(unknown)} in {expr}"
    assert expr.count("(") == expr.count(")"), f"unbalanced parentheses in {expr}"
    assert expr.count("{") == expr.count("}"), f"unbalanced braces in {expr}"


def check_rule_groups(groups: Any) -> list[dict[str, Any]]:
    """The structure Prometheus requires of a rule file's ``groups`` (what promtool checks)."""
    assert isinstance(groups, list) and groups
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), f"duplicate group names {names}"
    rules: list[dict[str, Any]] = []
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group.keys()
        assert isinstance(group["rules"], list) and group["rules"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert isinstance(rule["expr"], str)
            check_expr(rule["expr"])
            if "alert" in rule:
                assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
                assert DURATION.match(str(rule.get("for", "0s"))), rule
                assert rule["labels"]["severity"] in {"info", "warning", "critical"}
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]
                for key, value in {**rule["labels"], **rule["annotations"]}.items():
                    assert isinstance(key, str) and isinstance(value, str), (key, value)
            rules.append(rule)
    return rules


def test_metric_names_are_known() -> None:
    assert "labhub_ldap_login_failures_total" in KNOWN
    assert "labhub_queue_wait_duration_seconds_bucket" in KNOWN
    assert "jupyterhub_running_servers" in KNOWN
    with pytest.raises(AssertionError, match="unknown metric"):
        check_expr("sum(labhub_slices_vanished)")


def test_dashboard_json_parses_and_queries_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] == "LabHub"
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Slices by type and zone",
        "Queue length by course",
        "Queue wait time (p50 / p90 / p99)",
        "Admissions by course",
        "Refusals by reason",
        "Active reservations",
        "LDAP login time p95",
        "LDAP login failures by server",
        "Course profiles",
        "Running user servers",
        "Server start time (p50 / p90)",
    ):
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            check_expr(target["expr"])
            used |= set(METRIC.findall(target["expr"]))
    # Every LabHub metric family is on the dashboard.
    families = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    for family in families:
        assert any(name.startswith(family) for name in used), f"{family} has no panel"


def test_plain_rules_file_is_valid() -> None:
    rules = check_rule_groups(yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"])
    alerts = {r["alert"] for r in rules}
    assert {
        "LabHubNoFreeSlicesWhileQueued",
        "LabHubLdapServerDown",
        "LabHubProfileReloadFailing",
        "LabHubSpawnFailures",
    } <= alerts
    down = next(r for r in rules if r["alert"] == "LabHubLdapServerDown")
    assert 'reason="server-down"' in down["expr"] and "by (server)" in down["expr"]


def monitoring_sets(wait: int = 10) -> tuple[str, ...]:
    return (
        "monitoring.prometheusRule.enabled=true",
        "monitoring.grafanaDashboard.enabled=true",
        f"monitoring.prometheusRule.queueWaitMinutes={wait}",
    )


def test_rendered_prometheus_rule_has_chart_and_plain_rules() -> None:
    docs = render("defaults-values.yaml", sets=monitoring_sets(25))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    rules = check_rule_groups(rule["spec"]["groups"])
    by_name = {r["alert"]: r for r in rules}
    assert by_name["LabHubNoFreeSlicesWhileQueued"]["for"] == "25m"
    assert "LabHubSpawnsFailing" in by_name  # the chart's own hub rules stay
    assert "{{ $labels.server }}" in by_name["LabHubLdapServerDown"]["annotations"]["summary"]


def test_rendered_dashboard_configmap() -> None:
    docs = render("defaults-values.yaml", sets=monitoring_sets())
    config_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and "labhub.json" in (d.get("data") or {})
    )
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["labhub.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(f'namespace="{NAMESPACE}"' in e for e in exprs if "labhub_" in e)
    assert not any("LABHUB_NAMESPACE" in e for e in exprs)


def test_queue_wait_minutes_is_validated() -> None:
    err = render_error("defaults-values.yaml", sets=monitoring_sets(0))
    assert "queueWaitMinutes" in err


def test_default_install_has_no_monitoring_objects() -> None:
    docs = render("defaults-values.yaml")
    assert not [d for d in docs if d["kind"] == "PrometheusRule"]


def test_installs_register_the_admin_view(tmp_path: Path) -> None:
    from hub_config import load_hub_config

    from hub_ext.hub.admin_view import AdminPageHandler, OverviewApiHandler

    c = load_hub_config(render("defaults-values.yaml"), "gpulab-labhub", tmp_path)
    routes = dict(c.JupyterHub.extra_handlers)
    assert routes[r"/labhub/admin/?"] is AdminPageHandler
    assert routes[r"/labhub/api/overview"] is OverviewApiHandler
