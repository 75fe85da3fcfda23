"""Cluster files: the reference lab, node objects with GFD labels, and errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_ext.cli import main
from hub_ext.devcluster.config import (
    ClusterConfigError,
    load_cluster_config,
    parse_cluster_config,
)
from hub_ext.devcluster.node_objects import node_object


def one_node(**gpus: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": "n1", "zone": "room-a", "cpu": 16, "memory": "64Gi"}
    if gpus:
        node["gpus"] = gpus
    return {"nodes": [node]}


def labels_and_alloc(data: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    obj = node_object(parse_cluster_config(data).nodes[0])
    return obj["metadata"]["labels"], obj["status"]["allocatable"]


def test_reference_lab_has_two_rooms_ten_a100s_and_forty_slices() -> None:
    config = load_cluster_config()
    objects = [node_object(n) for n in config.nodes]
    zones = {o["metadata"]["labels"]["topology.kubernetes.io/zone"] for o in objects}
    assert zones == {"room-a", "room-b"}
    assert sum(n.gpus.count for n in config.nodes if n.gpus) == 10
    slices = sum(int(o["status"]["allocatable"].get("nvidia.com/mig-1g.10gb", 0)) for o in objects)
    assert slices == 40
    gpu_nodes = [o for o in objects if "nvidia.com/gpu.product" in o["metadata"]["labels"]]
    for obj in gpu_nodes:
        labels = obj["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
        assert labels["nvidia.com/mig.strategy"] == "mixed"
        assert labels["nvidia.com/mig.config"] == "all-1g.10gb"
        assert (
            labels["nvidia.com/mig-1g.10gb.count"]
            == obj["status"]["allocatable"]["nvidia.com/mig-1g.10gb"]
        )
    assert [sc.name for sc in config.storage_classes if sc.default] == ["ceph-rbd"]


def test_single_strategy_advertises_nvidia_com_gpu_per_slice() -> None:
    labels, alloc = labels_and_alloc(
        one_node(model="A100-SXM4-40GB", count=2, migStrategy="single", migConfig="all-1g.5gb")
    )
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"
    assert labels["nvidia.com/mig.strategy"] == "single"
    assert alloc["nvidia.com/gpu"] == "14" and labels["nvidia.com/gpu.count"] == "14"
    assert not any(k.startswith("nvidia.com/mig-") for k in alloc)


def test_mixed_layout_and_shared_replicas() -> None:
    layout = {"1g.10gb": 2, "2g.10gb": 1}
    labels, alloc = labels_and_alloc(one_node(model="A100-SXM4-40GB", migLayout=layout))
    assert alloc["nvidia.com/mig-1g.10gb"] == "2" and alloc["nvidia.com/mig-2g.10gb"] == "1"
    assert labels["nvidia.com/mig.config"] == "custom"
    labels, alloc = labels_and_alloc(one_node(model="A100-SXM4-40GB", count=2, replicas=4))
    assert alloc["nvidia.com/gpu"] == "8"
    assert labels["nvidia.com/gpu.replicas"] == "4"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB-SHARED"
    labels, alloc = labels_and_alloc(
        one_node(model="A100-SXM4-40GB", replicas=3, renameShared=True)
    )
    assert alloc["nvidia.com/gpu.shared"] == "3" and "nvidia.com/gpu" not in alloc


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["nodes"][0].pop("cpu"), "nodes[0].cpu: is required"),
        (lambda d: d["nodes"][0].update(memory="lots"), "nodes[0].memory:"),
        (lambda d: d["nodes"][0].update(colour="red"), "nodes[0]: unknown field 'colour'"),
        (lambda d: d["nodes"][0].update(gpus={"model": "Z80"}), "nodes[0].gpus.model:"),
        (
            lambda d: d["nodes"][0].update(gpus={"model": "A100-SXM4-40GB", "migConfig": "all-9g"}),
            "nodes[0].gpus.migConfig:",
        ),
        (
            lambda d: d["nodes"][0].update(
                gpus={"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": 5}}
            ),
            "nodes[0].gpus.migLayout:",
        ),
        (
            lambda d: d["nodes"][0].update(gpus={"model": "A100-SXM4-40GB", "migStrategy": "x"}),
            "nodes[0].gpus.migStrategy: 'x' is not accepted; use one of none, mixed, single",
        ),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "nodes[1].name: duplicate"),
        (
            lambda d: d["nodes"][0].update(taints=[{"key": "k", "effect": "Sometimes"}]),
            "nodes[0].taints[0].effect:",
        ),
    ],
)
def test_errors_name_the_field(mutate: Any, field: str) -> None:
    data = one_node()
    mutate(data)
    with pytest.raises(ClusterConfigError) as info:
        parse_cluster_config(data)
    assert field in str(info.value)


def test_cli_reports_a_bad_cluster_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text(yaml.safe_dump(one_node(model="A100-SXM4-40GB", count=0)))
    assert main(["devcluster", "up", "--config", str(bad), "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nodes[0].gpus.count: must be an integer of at least 1" in err


def test_yaml_syntax_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(ClusterConfigError) as info:
        load_cluster_config(bad)
    assert "\n" not in str(info.value) and "is not valid YAML at line 2" in str(info.value)
    with pytest.raises(ClusterConfigError, match="cannot read cluster file"):
        load_cluster_config(tmp_path / "missing.yaml")


def test_help_says_what_it_is_not(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["devcluster", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "no images",
        "no isolation",
        "no network policy enforcement",
        "no resource limits enforcement",
    ):
        assert phrase in text
