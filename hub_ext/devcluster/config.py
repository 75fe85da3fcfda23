"""Cluster definition files for the development cluster.

A cluster file is YAML::

    name: my-lab
    nodes:
      - name: room-a-gpu-1
        zone: room-a                 # topology.kubernetes.io/zone
        cpu: 64
        memory: 256Gi
        labels: {lab.example/role: gpu}
        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
        gpus:
          model: A100-SXM4-40GB      # a model name or GFD product name from the MIG catalog
          count: 3
          migStrategy: mixed         # none | mixed | single
          migConfig: all-1g.10gb     # mig-parted style: all-disabled or all-<profile>
          migLayout: {1g.10gb: 4}    # instead of all-<profile>: instances per card
          replicas: 1                # time-slicing replicas per device (shared GPUs)
          renameShared: false        # advertise <resource>.shared instead of <resource>
    storageClasses:
      - name: ceph-rbd
        default: true
    kubelet:                         # see hub_ext.devcluster.kubelet.images
      images: {registry.example.org/courses/*: {cmd: [jupyterhub-singleuser]}}
      allowedHostPaths: [/srv/datasets]
      crashLoopBackOffSeconds: 10

Errors name the field ("nodes[2].gpus.migConfig: ...") and the accepted values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from hub_ext.core.mig.catalog import GpuModel, MigProfile
from hub_ext.devcluster.kubelet.images import (
    KubeletConfig,
    KubeletConfigError,
    parse_kubelet_config,
)
from hub_ext.devcluster.quantity import QuantityError, to_units

REFERENCE_LAB = "reference-lab.yaml"
MIG_STRATEGIES = ("none", "mixed", "single")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
ZONE_LABEL = "topology.kubernetes.io/zone"


class ClusterConfigError(ValueError):
    """A cluster file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class GpuSpec:
    model: GpuModel
    count: int
    mig_strategy: str
    mig_config: str
    mig_layout: tuple[tuple[MigProfile, int], ...]  # instances per card
    replicas: int = 1
    rename_shared: bool = False


@dataclass(frozen=True)
class NodeSpec:
    name: str
    zone: str
    cpu_millis: int
    memory_bytes: int
    pods: int = 110
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[Taint, ...] = ()
    gpus: GpuSpec | None = None


@dataclass(frozen=True)
class StorageClassSpec:
    name: str
    default: bool = False
    provisioner: str = "devcluster.labhub.local/hostpath"
    allow_expansion: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    nodes: tuple[NodeSpec, ...]
    storage_classes: tuple[StorageClassSpec, ...] = field(default_factory=tuple)
    kubelet: KubeletConfig = field(default_factory=KubeletConfig)


def reference_lab_path() -> Path:
    """Path of the shipped reference lab definition."""
    return Path(str(resources.files("hub_ext.devcluster") / "data" / REFERENCE_LAB))


def load_cluster_config(path: Path | str | None = None) -> ClusterConfig:
    """Read and check a cluster file (the reference lab when ``path`` is None)."""
    path = Path(path) if path is not None else reference_lab_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterConfigError(f"cannot read cluster file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ClusterConfigError(f"{path} is not valid YAML{where}: {problem}") from exc
    try:
        return parse_cluster_config(data)
    except ClusterConfigError as exc:
        raise ClusterConfigError(f"{path}: {exc}") from exc


def parse_cluster_config(data: object) -> ClusterConfig:
    """Check a parsed cluster definition; raises :class:`ClusterConfigError` naming the field."""
    allowed = {"name", "nodes", "storageClasses", "kubelet", "kind", "apiVersion"}
    root = _mapping(data, "the cluster file", allowed)
    name = _str(root.get("name", "devcluster"), "name")
    raw_nodes = root.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ClusterConfigError("nodes: must be a non-empty list of nodes")
    nodes = tuple(_node(item, f"nodes[{i}]") for i, item in enumerate(raw_nodes))
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        if node.name in seen:
            raise ClusterConfigError(f"nodes[{i}].name: duplicate node name {node.name!r}")
        seen.add(node.name)
    raw_classes = root.get("storageClasses", [{"name": "standard", "default": True}])
    if not isinstance(raw_classes, list):
        raise ClusterConfigError("storageClasses: must be a list")
    classes = tuple(_storage_class(c, f"storageClasses[{i}]") for i, c in enumerate(raw_classes))
    if sum(c.default for c in classes) > 1:
        raise ClusterConfigError("storageClasses: at most one storage class may be the default")
    try:
        kubelet = parse_kubelet_config(root.get("kubelet"))
    except KubeletConfigError as exc:
        raise ClusterConfigError(str(exc)) from exc
    return ClusterConfig(name=name, nodes=nodes, storage_classes=classes, kubelet=kubelet)


def _mapping(data: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{where}: must be a mapping")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ClusterConfigError(
            f"{where}: unknown field {unknown[0]!r}; accepted fields: {', '.join(sorted(allowed))}"
        )
    return data


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ClusterConfigError(f"{where}: must be a non-empty string")
    return value


def _int(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ClusterConfigError(f"{where}: must be an integer of at least {minimum}")
    return value


def _quantity(resource: str, value: object, where: str) -> int:
    try:
        units = to_units(resource, value)
    except QuantityError as exc:
        raise ClusterConfigError(f"{where}: {exc}") from exc
    if units <= 0:
        raise ClusterConfigError(f"{where}: must be greater than zero")
    return units


def _node(data: object, where: str) -> NodeSpec:
    allowed = {"name", "zone", "cpu", "memory", "pods", "labels", "taints", "gpus"}
    node = _mapping(data, where, allowed)
    name = _str(node.get("name"), f"{where}.name")
    if not _NAME.match(name) or len(name) > 63:
        raise ClusterConfigError(
            f"{where}.name: {name!r} is not a valid node name "
            "(use lower-case letters, digits, '-' and '.')"
        )
    for required in ("zone", "cpu", "memory"):
        if required not in node:
            raise ClusterConfigError(f"{where}.{required}: is required")
    labels = node.get("labels", {}) or {}
    if not isinstance(labels, dict):
        raise ClusterConfigError(f"{where}.labels: must be a mapping of label names to strings")
    taints_raw = node.get("taints", []) or []
    if not isinstance(taints_raw, list):
        raise ClusterConfigError(f"{where}.taints: must be a list of {{key, value, effect}}")
    taints = tuple(_taint(t, f"{where}.taints[{i}]") for i, t in enumerate(taints_raw))
    gpus = _gpus(node["gpus"], f"{where}.gpus") if node.get("gpus") is not None else None
    return NodeSpec(
        name=name,
        zone=_str(node["zone"], f"{where}.zone"),
        cpu_millis=_quantity("cpu", node["cpu"], f"{where}.cpu"),
        memory_bytes=_quantity("memory", node["memory"], f"{where}.memory"),
        pods=_int(node.get("pods", 110), f"{where}.pods", 1),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        taints=taints,
        gpus=gpus,
    )


def _taint(data: object, where: str) -> Taint:
    taint = _mapping(data, where, {"key", "value", "effect"})
    effect = taint.get("effect", "NoSchedule")
    if effect not in TAINT_EFFECTS:
        raise ClusterConfigError(
            f"{where}.effect: {effect!r} is not accepted; use one of {', '.join(TAINT_EFFECTS)}"
        )
    return Taint(
        key=_str(taint.get("key"), f"{where}.key"), value=str(taint.get("value", "")), effect=effect
    )


def _gpus(data: object, where: str) -> GpuSpec:
    allowed = {"model", "count", "migStrategy", "migConfig", "migLayout", "replicas"}
    allowed.add("renameShared")
    gpus = _mapping(data, where, allowed)
    model_name = _str(gpus.get("model"), f"{where}.model")
    from hub_ext.core.mig.catalog import (
        load_catalog,  # only cluster files with GPUs need the catalog
    )

    try:
        model = load_catalog().model(model_name)
    except (KeyError, ValueError) as exc:
        raise ClusterConfigError(f"{where}.model: {_message(exc)}") from exc
    count = _int(gpus.get("count", 1), f"{where}.count", 1)
    has_mig = "migConfig" in gpus or "migLayout" in gpus
    strategy = gpus.get("migStrategy", "mixed" if has_mig else "none")
    if strategy not in MIG_STRATEGIES:
        raise ClusterConfigError(
            f"{where}.migStrategy: {strategy!r} is not accepted; "
            f"use one of {', '.join(MIG_STRATEGIES)}"
        )
    replicas = _int(gpus.get("replicas", 1), f"{where}.replicas", 1)
    rename = gpus.get("renameShared", False)
    if not isinstance(rename, bool):
        raise ClusterConfigError(f"{where}.renameShared: must be true or false")
    layout, config_name = _layout(model, gpus, strategy, where)
    if strategy == "single" and len(layout) != 1:
        raise ClusterConfigError(
            f"{where}.migConfig: the single strategy needs every card split into one profile "
            f"(e.g. all-1g.10gb)"
        )
    return GpuSpec(model, count, strategy, config_name, layout, replicas, rename)


def _message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def _layout(
    model: GpuModel, gpus: dict[str, Any], strategy: str, where: str
) -> tuple[tuple[tuple[MigProfile, int], ...], str]:
    config_name = gpus.get("migConfig")
    raw_layout = gpus.get("migLayout")
    if strategy == "none":
        if raw_layout or (config_name not in (None, "all-disabled")):
            raise ClusterConfigError(
                f"{where}.migStrategy: is 'none' but a MIG layout is given; "
                "set migStrategy to mixed or single"
            )
        return (), "all-disabled"
    if raw_layout is not None:
        if not isinstance(raw_layout, dict) or not raw_layout:
            raise ClusterConfigError(f"{where}.migLayout: must map MIG profile names to counts")
        items = []
        for profile_name, amount in raw_layout.items():
            items.append((_profile(model, str(profile_name), f"{where}.migLayout"), amount))
        layout = tuple((p, _int(n, f"{where}.migLayout.{p.name}", 1)) for p, n in items)
        name = _str(config_name, f"{where}.migConfig") if config_name else "custom"
    else:
        name = _str(config_name, f"{where}.migConfig") if config_name else ""
        if not name.startswith("all-") or name == "all-disabled":
            accepted = ", ".join(f"all-{p.name}" for p in model.profiles)
            raise ClusterConfigError(
                f"{where}.migConfig: {name or 'nothing'!r} is not a MIG layout for {model.name}; "
                f"use one of {accepted}, or give migLayout"
            )
        profile = _profile(model, name[4:], f"{where}.migConfig")
        layout = ((profile, profile.max_instances),)
    if not _fits(model, layout):
        shown = ", ".join(f"{n}x {p.name}" for p, n in layout)
        raise ClusterConfigError(
            f"{where}.migLayout: {shown} does not fit on one {model.name} "
            f"({model.memory_slices} memory slices, {model.compute_slices} compute slices)"
        )
    return layout, name


def _profile(model: GpuModel, name: str, where: str) -> MigProfile:
    try:
        return model.profile(name)
    except KeyError as exc:
        raise ClusterConfigError(f"{where}: {_message(exc)}") from exc


def _fits(model: GpuModel, layout: tuple[tuple[MigProfile, int], ...]) -> bool:
    """Whether the instances can be placed without overlap (small backtracking search)."""
    if sum(p.compute_slices * n for p, n in layout) > model.compute_slices:
        return False
    if any(n > p.max_instances for p, n in layout):
        return False
    wanted = sorted((p for p, n in layout for _ in range(n)), key=lambda p: -p.memory_slices)

    def place(index: int, used: frozenset[int]) -> bool:
        if index == len(wanted):
            return True
        for spot in wanted[index].placements:
            cells = frozenset(range(spot.start, spot.start + spot.size))
            if not cells & used and place(index + 1, used | cells):
                return True
        return False

    return place(0, frozenset())


def _storage_class(data: object, where: str) -> StorageClassSpec:
    sc = _mapping(data, where, {"name", "default", "provisioner", "allowVolumeExpansion"})
    default = sc.get("default", False)
    if not isinstance(default, bool):
        raise ClusterConfigError(f"{where}.default: must be true or false")
    return StorageClassSpec(
        name=_str(sc.get("name"), f"{where}.name"),
        default=default,
        provisioner=_str(
            sc.get("provisioner", StorageClassSpec.provisioner), f"{where}.provisioner"
        ),
        allow_expansion=bool(sc.get("allowVolumeExpansion", True)),
    )
