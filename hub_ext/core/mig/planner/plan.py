"""The planner: successive proven-optimal MILPs for one GPU inventory, then the plan dealt out
to its GPUs, and when the demand does not fit, what would serve it."""

from __future__ import annotations

from collections import Counter

from hub_ext.core.mig.catalog import Catalog, GpuModel
from hub_ext.core.mig.planner.choices import Keyed, Setup, keyed_problem, pooled
from hub_ext.core.mig.planner.flow import allocate, spread
from hub_ext.core.mig.planner.model import (
    ExtraGpus,
    GpuAssignment,
    MultiPlan,
    Node,
    Option,
    Requirement,
    SharingFits,
    Vec,
    layout_key,
)
from hub_ext.core.mig.planner.solve import (
    TIME_LIMIT_S,
    fewest_keys,
    least_extra,
    reaches,
    solve,
)


def _gpus(nodes: tuple[Node, ...]) -> tuple[list[tuple[str, int, int]], dict[GpuModel, int]]:
    """Every GPU as (node, index on the node, group), and the GPUs per model (the groups, in
    order of first appearance). Models are compared once per node entry: they hash slowly."""
    out: list[tuple[str, int, int]] = []
    sizes: dict[GpuModel, int] = {}
    group: dict[GpuModel, int] = {}
    for node in nodes:
        index = 0
        for model, count in node.gpus:
            if count:
                g = group.setdefault(model, len(group))
                sizes[model] = sizes.get(model, 0) + count
                out.extend((node.name, index + i, g) for i in range(count))
                index += count
    return out, sizes


def _deal(
    assigned: list[tuple[str, int, int]], keyed: Keyed, counts: tuple[int, ...]
) -> tuple[tuple[GpuAssignment, ...], Vec]:
    """Hand the chosen setups (every GPU of group g, model ``keyed.models[g]``, has one) to the
    GPUs and split the served seats among them. Layouts are spread so that as many nodes as
    possible run one layout on all their GPUs (:func:`spread`)."""
    problem, setups = keyed.problem, keyed.setups
    per_node: dict[str, Counter[int]] = {}
    for node, _, g in assigned:
        per_node.setdefault(node, Counter())[g] += 1
    queue: list[list[Setup]] = []
    for g in range(len(keyed.models)):
        pools: dict[tuple[tuple[str, int], ...] | None, list[Setup]] = {}
        cols = [p for p, col in enumerate(problem.columns) if col.group == g]
        for p in sorted(cols, key=lambda p: (-counts[p], p)):
            pools.setdefault(layout_key(setups[p].layout), []).extend([setups[p]] * counts[p])
        piles = list(pools.values())
        nodes = [(c[g], len(c) == 1) for c in per_node.values() if c[g]]
        queue.append([piles[k].pop() for k in spread(nodes, [len(pile) for pile in piles])])
    flow = [list(row) for row in allocate(problem, counts)]
    index = {m: s for s, m in enumerate(problem.classes)}
    out: list[GpuAssignment] = []
    cursor = [0] * len(keyed.models)
    for node, gpu, g in assigned:
        choice = queue[g][cursor[g]]
        cursor[g] += 1
        seats = [0] * len(problem.demand)
        for mask, count in choice.supply:
            row = flow[index[mask]]
            for j, avail in enumerate(row):
                take = min(avail, count)
                row[j] -= take
                seats[j] += take
                count -= take
        out.append(
            GpuAssignment(
                node, gpu, keyed.models[g], Option(choice.layout, tuple(seats), choice.stranded)
            )
        )
    satisfied = tuple(sum(g.option.seats[j] for g in out) for j in range(len(problem.demand)))
    return tuple(out), satisfied


def _smallest(
    base: dict[GpuModel, int],
    model: GpuModel,
    reqs: tuple[Requirement, ...],
    sharing: bool,
    time_limit: float,
    most: int | None = None,
) -> int | None:
    """The fewest GPUs of ``model`` that, added to ``base``, meet the whole demand (known to
    be at most ``most``, if given)."""
    sizes = dict(base)
    sizes.setdefault(model, 0)
    keyed = keyed_problem(sizes, reqs, sharing, costed=False)
    pool = pooled(keyed)
    group = keyed.models.index(model)
    return least_extra(
        pool.problem, next(g for g, m in enumerate(pool.members) if group in m), most, time_limit
    )


def _alternatives(
    catalog: Catalog,
    sizes: dict[GpuModel, int],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool,
    time_limit: float,
) -> tuple[tuple[ExtraGpus, ...], SharingFits | None]:
    out: list[ExtraGpus] = []
    for model in catalog.models:
        alone = _smallest({}, model, reqs, allow_sharing, time_limit)
        if alone is None:  # the model cannot serve some requirement at all
            continue
        # the GPUs that serve the demand alone also do beside the inventory
        extra = _smallest(sizes, model, reqs, allow_sharing, time_limit, alone)
        if extra is not None:
            out.append(ExtraGpus(model.name, extra, alone))
    sharing = None
    if not allow_sharing:
        shared = pooled(keyed_problem(sizes, reqs, True, costed=False)).problem
        if reaches(shared, sum(r.seats for r in reqs), time_limit):
            sharing = SharingFits(sum(r.seats for r in reqs))
    return tuple(out), sharing


def plan_nodes(
    catalog: Catalog,
    nodes: tuple[Node, ...],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool = False,
    time_limit: float = TIME_LIMIT_S,
) -> MultiPlan:
    """Choose one layout per GPU maximising satisfied seats, then minimising stranded slices,
    then minimising distinct layouts, each proven optimal. When the demand does not fit: per
    ``catalog`` model the fewest GPUs to add (and to use alone), and whether whole-GPU sharing
    would serve it. ``time_limit``: seconds each solve may take at most (a safety net: past it,
    :class:`~.solve.PlanTimeLimitError`)."""
    assigned, sizes = _gpus(nodes)
    keyed = keyed_problem(sizes, reqs, allow_sharing)
    pool = pooled(keyed)
    best = solve(pool.problem, time_limit)
    start = keyed.problem.everyone(pool.unpool(keyed, best.counts))
    counts = fewest_keys(keyed.problem, keyed.keys, start, time_limit)
    gpus, satisfied = _deal(assigned, keyed, counts)
    alternatives: tuple[ExtraGpus, ...] = ()
    sharing = None
    if sum(satisfied) < sum(r.seats for r in reqs):
        alternatives, sharing = _alternatives(catalog, sizes, reqs, allow_sharing, time_limit)
    return MultiPlan(reqs, gpus, satisfied, alternatives, sharing)
