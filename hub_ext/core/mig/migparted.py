"""NVIDIA mig-parted configuration (``version: v1``, ``mig-configs``) for a plan.

Each node gets one named config, the value of its ``nvidia.com/mig.config`` label. Uniform nodes
use the conventional names (``all-1g.10gb``, ``all-disabled``); a uniform node with a mixed layout
gets ``custom-<n>x<profile>-...``; a node whose GPUs differ gets ``node-<node name>`` with one
``devices: [indices]`` entry per layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub_ext.core.mig.layouts import Layout
from hub_ext.core.mig.planner.model import MultiPlan


@dataclass(frozen=True)
class NodeConfig:
    """The mig-parted config name for ``node`` (its ``nvidia.com/mig.config`` label value)."""

    node: str
    config: str


def layout_name(layout: Layout | None) -> str:
    """Config name of a layout applied to every GPU of a node."""
    if layout is None:
        return "all-disabled"
    counts = layout.counts()
    if len(counts) == 1:
        return "all-" + next(iter(counts))
    return "custom-" + "-".join(f"{n}x{p}" for p, n in sorted(counts.items()))


def _entry(devices: str, layout: Layout | None) -> list[str]:
    lines = [f"    - devices: {devices}"]
    if layout is None:
        return [*lines, "      mig-enabled: false"]
    lines += ["      mig-enabled: true", "      mig-devices:"]
    lines += [f'        "{p}": {n}' for p, n in sorted(layout.counts().items())]
    return lines


def _per_node(result: MultiPlan) -> dict[str, list[tuple[int, Layout | None]]]:
    nodes: dict[str, list[tuple[int, Layout | None]]] = {}
    for g in result.gpus:
        nodes.setdefault(g.node, []).append((g.index, g.option.layout))
    return nodes


def node_configs(result: MultiPlan) -> tuple[NodeConfig, ...]:
    """The ``nvidia.com/mig.config`` label value per node."""
    out: list[NodeConfig] = []
    for node, gpus in _per_node(result).items():
        layouts = {lay for _, lay in gpus}
        name = layout_name(next(iter(layouts))) if len(layouts) == 1 else f"node-{node}"
        out.append(NodeConfig(node, name))
    return tuple(out)


def render(result: MultiPlan) -> str:
    """The mig-parted YAML document with every config the plan's nodes use."""
    lines = ["version: v1", "mig-configs:"]
    seen: set[str] = set()
    per_node = _per_node(result)
    for cfg in node_configs(result):
        if cfg.config in seen:
            continue
        seen.add(cfg.config)
        lines.append(f"  {cfg.config}:")
        gpus = per_node[cfg.node]
        if not cfg.config.startswith("node-"):
            lines += _entry("all", gpus[0][1])
            continue
        groups: dict[Layout | None, list[int]] = {}
        for index, lay in gpus:
            groups.setdefault(lay, []).append(index)
        for lay, indices in groups.items():
            lines += _entry("[" + ", ".join(str(i) for i in indices) + "]", lay)
    return "\n".join(lines) + "\n"
