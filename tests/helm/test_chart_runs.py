"""What a running chart needs: the user-scheduler's volume binding, stable tokens for GitOps,
probes on every long-running container."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from chart_render import CHART, CI_VALUES, one, pod_specs, render, render_error, run_helm

FULL = "gpulab-labhub"
GIT = ("labhub.profiles.source=git", "labhub.profiles.git.repo=https://git.example.edu/courses")


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and not rule.get("resourceNames")
        for rule in rules
    )


def test_user_scheduler_may_bind_wait_for_first_consumer_volumes() -> None:
    role = one(render("defaults-values.yaml"), "ClusterRole", f"labhub-{FULL}-user-scheduler")
    rules = role["rules"]
    for resource in ("persistentvolumes", "persistentvolumeclaims"):
        for verb in ("get", "list", "watch", "patch", "update"):
            assert _allows(rules, "", resource, verb), (resource, verb)
        assert not _allows(rules, "", resource, "delete")
        assert not _allows(rules, "", resource, "create")
    for resource in ("storageclasses", "csinodes", "csidrivers", "csistoragecapacities"):
        assert _allows(rules, "storage.k8s.io", resource, "watch"), resource
    assert not _allows(rules, "", "pods", "delete")


def _hub_secret_refs(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for _, spec in pod_specs(docs):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["key"] in {"proxy.token", "hub.cookie-secret", "metrics.token"}:
                    refs.add((ref["name"], ref["key"]))
    return refs


def test_tokens_from_an_existing_secret_render_identically(tmp_path: Path) -> None:
    """Without a cluster `lookup` finds nothing, so generated tokens change on every render;
    with hub.existingSecret (here the Secret a first render generated, as an operator would
    store it) two renders are byte for byte the same and every reader uses that Secret."""
    first = render("defaults-values.yaml")
    generated = one(first, "Secret", f"{FULL}-hub")
    existing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "lab-tokens", "namespace": "labhub"},
        "data": {k: v for k, v in generated["data"].items() if k != "values.yaml"},
    }
    assert set(existing["data"]) == {"proxy.token", "hub.cookie-secret", "metrics.token"}
    (tmp_path / "existing-secret.yaml").write_text(yaml.safe_dump(existing))
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "hub": {"existingSecret": "lab-tokens"},
                "monitoring": {"serviceMonitor": {"enabled": True}},
            }
        )
    )
    args = ["template", "gpulab", str(CHART), "-n", "labhub"]
    args += ["-f", str(CHART / "ci" / "defaults-values.yaml"), "-f", str(values)]
    one_run, other_run = run_helm(*args), run_helm(*args)
    assert one_run.returncode == 0, one_run.stderr
    assert one_run.stdout == other_run.stdout
    docs = [d for d in yaml.safe_load_all(one_run.stdout) if d]
    assert set(one(docs, "Secret", f"{FULL}-hub")["data"]) == {"values.yaml"}
    refs = _hub_secret_refs(docs)
    assert {name for name, _ in refs} == {"lab-tokens"}
    assert {key for _, key in refs} == {"proxy.token", "hub.cookie-secret", "metrics.token"}
    monitor = one(docs, "ServiceMonitor", f"{FULL}-hub")
    credentials = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    assert credentials == {"name": "lab-tokens", "key": "metrics.token"}


def test_generated_tokens_differ_between_renders_without_existing_secret() -> None:
    args = ["template", "gpulab", str(CHART), "-n", "labhub"]
    args += ["-f", str(CHART / "ci" / "defaults-values.yaml")]
    assert run_helm(*args).stdout != run_helm(*args).stdout  # why hub.existingSecret exists


def test_existing_secret_and_given_tokens_conflict() -> None:
    error = render_error(
        "defaults-values.yaml",
        sets=("hub.existingSecret=lab-tokens", "proxy.secretToken=" + "ab" * 32),
    )
    assert "hub.existingSecret: put the cookie secret and the proxy token into that Secret" in error


def test_every_long_running_container_has_probes() -> None:
    for values in CI_VALUES:
        docs = render(values, sets=GIT) if values == "defaults-values.yaml" else render(values)
        for owner, spec in pod_specs(docs):
            if owner.startswith(("CronJob/", "Job/")):
                continue
            for container in spec["containers"]:
                if container["image"].startswith("registry.k8s.io/pause:"):
                    continue  # a pause container has nothing to probe (the image pre-puller)
                assert "livenessProbe" in container, (values, owner, container["name"])
                if container["name"] != "git-sync":  # see test_git_sync_probe
                    assert "readinessProbe" in container, (values, owner, container["name"])


def test_git_sync_probe() -> None:
    hub = one(render("defaults-values.yaml", sets=GIT), "Deployment", f"{FULL}-hub")
    containers = {c["name"]: c for c in hub["spec"]["template"]["spec"]["containers"]}
    sync = containers["git-sync"]
    assert "--http-bind=:8089" in sync["args"]
    assert sync["livenessProbe"]["httpGet"] == {"path": "/", "port": "git-sync"}
    assert {"name": "git-sync", "containerPort": 8089, "protocol": "TCP"} in sync["ports"]
    # the hub stays Ready on a repository outage: no readiness gate on git-sync
    assert "readinessProbe" not in sync


def test_zero_to_jupyterhub_settings_carry_over() -> None:
    docs = render("z2jh-settings-values.yaml")
    hub = one(docs, "Deployment", f"{FULL}-hub")["spec"]["template"]["spec"]
    container = hub["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULL}-hub",
        "key": "hub.db.password",
    }
    secret = one(docs, "Secret", f"{FULL}-hub")
    assert base64.b64decode(secret["data"]["hub.db.password"]) == b"not-a-real-password"
    assert b"not-a-real-password" not in base64.b64decode(secret["data"]["values.yaml"])
    assert "--upgrade-db" in container["command"]
    assert [c["name"] for c in hub["initContainers"]] == ["wait-for-db"]
    assert {"name": "site-config", "configMap": {"name": "labhub-site-config"}} in hub["volumes"]
    assert any(m["name"] == "site-config" for m in container["volumeMounts"])
    pull = one(docs, "Secret", f"{FULL}-image-pull-secret")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    entry = auths["registry.lab.example.edu"]
    assert base64.b64decode(entry["auth"]) == b"labhub-pull:not-a-real-token"
    for _, spec in pod_specs(docs):
        assert {"name": f"{FULL}-image-pull-secret"} in spec.get("imagePullSecrets", [])
    values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
    assert f"{FULL}-image-pull-secret" in values["computed"]["imagePullSecrets"]  # user pods
    course = values["singleuser"]["extraEnv"]["COURSE_TOKEN"]
    assert course == {"valueFrom": {"secretKeyRef": {"name": "course-tokens", "key": "token"}}}


def test_rbac_create_false_leaves_the_grants_to_the_administrator() -> None:
    docs = render("defaults-values.yaml", sets=("rbac.create=false",))
    components = {
        d["metadata"]["labels"].get("app.kubernetes.io/component")
        for d in docs
        if d["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    }
    assert not components & {"hub", "user-scheduler"}
    assert one(docs, "ServiceAccount", f"{FULL}-hub")


def test_hub_role_may_patch_pods_to_lift_the_admission_gate() -> None:
    role = one(render("defaults-values.yaml"), "Role", f"{FULL}-hub")
    assert _allows(role["rules"], "", "pods", "patch")
    assert not _allows(role["rules"], "", "pods", "update")


def test_conflicting_z2jh_settings_name_the_value() -> None:
    sets = ("hub.db.type=postgres", "hub.db.url=postgresql://a@b/c", "hub.db.password=x")
    error = render_error("defaults-values.yaml", sets=(*sets, "hub.db.passwordSecret.name=db"))
    assert "hub.db.password: give the PostgreSQL password either" in error
    error = render_error("defaults-values.yaml", sets=("imagePullSecret.create=true",))
    assert "imagePullSecret.registry: name the registry host" in error
