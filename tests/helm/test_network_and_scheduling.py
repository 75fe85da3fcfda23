"""NetworkPolicies, the user scheduler's packing configuration, spreading and priorities."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml
from chart_render import one, pod_specs, render

FULL = "gpulab-labhub"
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def _allows(policy: dict[str, Any], address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether an egress rule lets a packet to address:port through (ipBlock peers only)."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress") or []:
        ports = rule.get("ports")
        if ports and not any(
            p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
        ):
            continue
        peers = rule.get("to")
        if not peers:
            return True
        for peer in peers:
            block = peer.get("ipBlock")
            if block is None:
                continue
            inside = ip in ipaddress.ip_network(block["cidr"])
            excluded = any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
            if inside and not excluded:
                return True
    return False


def test_user_egress_blocks_private_ranges_and_metadata_but_allows_dns_and_internet() -> None:
    policy = one(render("defaults-values.yaml"), "NetworkPolicy", f"{FULL}-singleuser")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not _allows(policy, "169.254.169.254", 80)
    for address in ("10.1.2.3", "172.20.0.1", "192.168.1.1"):
        assert not _allows(policy, address, 443), address
        assert _allows(policy, address, 53, "UDP"), address
    assert _allows(policy, "10.96.0.10", 53, "TCP")
    assert _allows(policy, "140.82.112.3", 443)
    kube_dns = [
        r
        for r in policy["spec"]["egress"]
        if any("namespaceSelector" in peer for peer in r.get("to") or [])
    ]
    assert kube_dns[0]["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert {p["port"] for p in kube_dns[0]["ports"]} == {53}
    hub_rule = policy["spec"]["egress"][0]
    assert hub_rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"
    assert hub_rule["ports"] == [{"port": 8081, "protocol": "TCP"}]


def test_user_egress_switches() -> None:
    sets = (
        "singleuser.networkPolicy.egressAllowRules.privateIPs=true",
        "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer=true",
    )
    policy = one(render("defaults-values.yaml", sets=sets), "NetworkPolicy", f"{FULL}-singleuser")
    assert _allows(policy, "10.1.2.3", 443)
    assert _allows(policy, "169.254.169.254", 80)
    closed = one(
        render(
            "defaults-values.yaml",
            sets=("singleuser.networkPolicy.egressAllowRules.nonPrivateIPs=false",),
        ),
        "NetworkPolicy",
        f"{FULL}-singleuser",
    )
    assert not _allows(closed, "140.82.112.3", 443)
    assert _allows(closed, "10.96.0.10", 53, "UDP")


def test_user_ingress_only_from_proxy_and_hub() -> None:
    policy = one(render("defaults-values.yaml"), "NetworkPolicy", f"{FULL}-singleuser")
    (rule,) = policy["spec"]["ingress"]
    components = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]
    }
    assert components == {"proxy", "hub"}


def test_hub_may_reach_ldap_servers_of_both_rooms() -> None:
    policy = one(render("all-options-values.yaml"), "NetworkPolicy", "lab-hub")
    assert _allows(policy, "10.10.1.5", 636)
    assert _allows(policy, "10.10.2.5", 636)
    assert _allows(policy, "10.10.2.5", 389)
    assert not _allows(policy, "10.10.3.5", 636)
    assert _allows(policy, "10.20.0.1", 25)


def test_hub_ldap_port_defaults_from_scheme() -> None:
    policy = one(render("single-strategy-values.yaml"), "NetworkPolicy", f"{FULL}-hub")
    assert _allows(policy, "203.0.113.9", 636)
    assert not _allows(policy, "203.0.113.9", 389)


def test_postgres_port_comes_from_the_url() -> None:
    policy = one(render("postgres-values.yaml"), "NetworkPolicy", f"{FULL}-hub")
    assert _allows(policy, "10.5.5.5", 5433)


def _scheduler_config(values: str, sets: tuple[str, ...] = ()) -> dict[str, Any]:
    cm = one(render(values, sets=sets), "ConfigMap", f"{FULL}-user-scheduler")
    return yaml.safe_load(cm["data"]["config.yaml"])


def test_user_scheduler_packs_with_most_allocated_including_mig() -> None:
    config = _scheduler_config("defaults-values.yaml")
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    (profile,) = config["profiles"]
    assert profile["schedulerName"] == f"{FULL}-user-scheduler"
    disabled = {p["name"] for p in profile["plugins"]["score"]["disabled"]}
    assert "NodeResourcesBalancedAllocation" in disabled
    (fit,) = [p for p in profile["pluginConfig"] if p["name"] == "NodeResourcesFit"]
    strategy = fit["args"]["scoringStrategy"]
    assert strategy["type"] == "MostAllocated"
    weights = {r["name"]: r["weight"] for r in strategy["resources"]}
    assert weights == {
        "cpu": 1,
        "memory": 1,
        "nvidia.com/gpu": 3,
        "nvidia.com/gpu.shared": 3,
        "nvidia.com/mig-1g.10gb": 3,
    }
    assert config["leaderElection"]["resourceNamespace"] == "labhub"


def test_user_scheduler_weights_follow_slice_types() -> None:
    config = _scheduler_config(
        "defaults-values.yaml",
        sets=(
            "labhub.slices.types={1g.5gb,2g.10gb}",
            "scheduling.userScheduler.resourceWeights.nvidia\\.com/mig-2g\\.10gb=5",
        ),
    )
    fit = config["profiles"][0]["pluginConfig"][0]
    weights = {r["name"]: r["weight"] for r in fit["args"]["scoringStrategy"]["resources"]}
    assert weights["nvidia.com/mig-1g.5gb"] == 3
    assert weights["nvidia.com/mig-2g.10gb"] == 5
    assert "nvidia.com/mig-1g.10gb" not in weights


def test_user_scheduler_uses_the_upstream_image_and_leader_election() -> None:
    docs = render("defaults-values.yaml")
    deployment = one(docs, "Deployment", f"{FULL}-user-scheduler")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("registry.k8s.io/kube-scheduler:v1.")
    assert deployment["spec"]["replicas"] == 2
    role = one(docs, "Role", f"{FULL}-user-scheduler")
    assert {"leases"} == {r for rule in role["rules"] for r in rule["resources"]}


@pytest.mark.parametrize("component", ["hub", "proxy", "user-scheduler"])
def test_core_pods_spread_over_rooms_with_priority(component: str) -> None:
    specs = dict(pod_specs(render("defaults-values.yaml")))
    spec = specs[f"Deployment/{FULL}-{component}"]
    zone = [
        t
        for t in spec["topologySpreadConstraints"]
        if t["topologyKey"] == "topology.kubernetes.io/zone"
    ]
    assert (
        zone and zone[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    )
    assert spec["priorityClassName"] == f"{FULL}-core"


def test_user_priority_class_never_preempts() -> None:
    docs = render("defaults-values.yaml")
    user = one(docs, "PriorityClass", f"{FULL}-user")
    core = one(docs, "PriorityClass", f"{FULL}-core")
    assert user["preemptionPolicy"] == "Never"
    assert core["value"] > user["value"]


def test_pdbs_select_their_pods() -> None:
    docs = render("traefik-values.yaml")
    for name in (f"{FULL}-hub", f"{FULL}-traefik", f"{FULL}-user-scheduler"):
        pdb = one(docs, "PodDisruptionBudget", name)
        deployment = one(docs, "Deployment", name)
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )


def test_hub_rbac_is_namespaced_and_minimal() -> None:
    docs = render("defaults-values.yaml")
    role = one(docs, "Role", f"{FULL}-hub")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert ("pods", "create") in granted
    assert ("pods", "patch") in granted  # slice admission lifts the scheduling gate
    assert ("persistentvolumeclaims", "create") in granted
    assert not any(r == "secrets" for r, _ in granted)
    assert not any(v in {"*", "escalate", "bind", "impersonate"} for _, v in granted)
    cluster = one(docs, "ClusterRole", f"labhub-{FULL}-hub")
    assert cluster["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}
    ]


def test_backup_rbac_and_schedule() -> None:
    docs = render("all-options-values.yaml")
    role = one(docs, "Role", "lab-backup")
    snap = next(r for r in role["rules"] if r["apiGroups"] == ["snapshot.storage.k8s.io"])
    assert set(snap["verbs"]) == {"get", "list", "create", "delete"}
    cron = one(docs, "CronJob", "lab-backup")
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--keep-daily=14" in args and "--keep-weekly=8" in args
    assert "--snapshot-class=ceph-rbd-snapshots" in args
