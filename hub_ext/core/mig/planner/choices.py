"""The ways to set up one GPU of a model for a demand, and the integer programme they make.

Per GPU model every maximal MIG layout (computed once per model) is reduced to its instances per
*class*, the set of requirements an instance can serve (a bitmask); with sharing allowed, "MIG
disabled, the whole GPU shared by seats of requirement j" is one more setup per requirement.
Per count the least stranded layout is kept, and a setup is dropped when another one's instances
can stand in for all of its instances at no more stranded slices.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from hub_ext.core.mig.catalog import GpuModel, MigProfile
from hub_ext.core.mig.layouts import Layout, Stranded, maximal_layouts, stranded
from hub_ext.core.mig.planner.model import Column, Problem, Requirement, layout_key

LayoutKey = tuple[tuple[str, int], ...] | None


@dataclass(frozen=True)
class Setup:
    """One way to set up a GPU of a model: its instances per class (requirement bitmask)."""

    layout: Layout | None
    stranded: Stranded
    supply: tuple[tuple[int, int], ...]


def _mask(prof: MigProfile, reqs: tuple[Requirement, ...]) -> int:
    return sum(1 << j for j, r in enumerate(reqs) if r.seats > 0 and r.qualifies(prof))


def _covers(q: Setup, p: Setup) -> bool:
    """Whether the instances of ``q`` can stand in for all of ``p``'s (Hall's condition: every
    set of ``p``'s classes has at least as many instances of ``q`` able to serve one of them)."""
    # per class of q, which of p's classes its instances can serve (a bitmask over p.supply)
    serves = [
        (sum(1 << i for i, (m, _) in enumerate(p.supply) if t & m == m), c) for t, c in q.supply
    ]
    for pick in range(1, 1 << len(p.supply)):
        need = sum(c for i, (_, c) in enumerate(p.supply) if pick >> i & 1)
        if sum(c for mask, c in serves if mask & pick) < need:
            return False
    return True


@functools.cache
def layout_table(model: GpuModel) -> tuple[tuple[Layout, Stranded], ...]:
    """Every maximal layout of ``model`` with its stranded capacity (computed once per model)."""
    return tuple((lay, stranded(model, lay)) for lay in maximal_layouts(model))


def _shared(model: GpuModel, reqs: tuple[Requirement, ...]) -> list[Setup]:
    """MIG disabled, the whole GPU shared by seats of one requirement: one setup per
    requirement that such a GPU serves."""
    out = []
    for j, r in enumerate(reqs):
        seats = min(r.shared_seats(model), r.seats)
        if seats > 0:
            out.append(Setup(None, Stranded(0, 0), ((1 << j, seats),)))
    return out


@functools.cache
def choices(
    model: GpuModel, reqs: tuple[Requirement, ...], allow_sharing: bool, costed: bool = True
) -> tuple[Setup, ...]:
    """The ways to set up one GPU of ``model`` that no other way beats.

    One per maximal layout (instances counted per class, the least stranded layout kept per
    count), plus with sharing one per requirement served by the whole GPU. A setup is dropped
    when another one's instances can stand in for all of its instances at no more stranded
    slices (``costed=False``, for questions of seats alone: whatever the stranded slices).
    Whole-GPU sharing setups are kept when ``costed``: they share one layout ("MIG disabled"),
    so dropping one could cost the third goal (fewest distinct layouts) a layout.
    """
    found: dict[tuple[tuple[int, int], ...], Setup] = {}
    masks = {prof.name: _mask(prof, reqs) for prof in model.profiles}
    for lay, st in layout_table(model):
        counts = Counter(masks[i.profile.name] for i in lay.instances)
        supply = tuple(sorted((m, c) for m, c in counts.items() if m))
        old = found.get(supply)
        if old is None or st.total < old.stranded.total:
            found[supply] = Setup(lay, st, supply)
    shared = _shared(model, reqs) if allow_sharing else []
    for setup in shared:
        old = found.get(setup.supply)
        if old is None or old.stranded.total > 0:
            found[setup.supply] = setup
    cands = list(found.values())

    def cost(setup: Setup) -> int:
        return setup.stranded.total if costed else 0

    size = [sum(c for _, c in setup.supply) for setup in cands]  # fewer cannot stand in
    kept: list[Setup] = []
    for i, p in enumerate(cands):
        beaten = (p.layout is not None or not costed) and any(
            k != i
            and cost(q) <= cost(p)
            and size[k] >= size[i]
            and _covers(q, p)
            and (k < i or cost(q) < cost(p) or size[i] < size[k] or not _covers(p, q))
            for k, q in enumerate(cands)
        )
        if not beaten:
            kept.append(p)
    if not costed:
        return tuple(kept)
    return tuple(kept) + tuple(s for s in shared if s not in kept)


@dataclass(frozen=True)
class Keyed:
    """The programme of a GPU inventory: one group per model (``models``), its columns, the
    setup behind each column and each column's *key* (its layout within its model, the unit
    of the third goal)."""

    problem: Problem
    models: tuple[GpuModel, ...]
    setups: tuple[Setup, ...]
    keys: tuple[int, ...]


def keyed_problem(
    sizes: dict[GpuModel, int],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool,
    costed: bool = True,
) -> Keyed:
    """One group per model with ``sizes[model]`` GPUs; each column's cost is its stranded
    slices less those of the model's least stranded setup, so every group has a cost-0
    column (``costed=False``: every cost 0, fewer columns, for questions of seats alone)."""
    per_model = [choices(model, reqs, allow_sharing, costed) for model in sizes]
    classes = sorted({m for setups in per_model for s in setups for m, _ in s.supply})
    columns: list[Column] = []
    setups: list[Setup] = []
    keys: list[int] = []
    ids: dict[tuple[int, LayoutKey], int] = {}
    for g, model_setups in enumerate(per_model):
        cheapest = min(s.stranded.total for s in model_setups)
        for s in model_setups:
            have = dict(s.supply)
            vector = tuple(have.get(m, 0) for m in classes)
            columns.append(Column(g, vector, s.stranded.total - cheapest if costed else 0))
            setups.append(s)
            keys.append(ids.setdefault((g, layout_key(s.layout)), len(ids)))
    problem = Problem(
        tuple(classes), tuple(r.seats for r in reqs), tuple(sizes.values()), tuple(columns)
    )
    return Keyed(problem, tuple(sizes), tuple(setups), tuple(keys))


@dataclass(frozen=True)
class Pooled:
    """The programme of :class:`Keyed` with models whose columns are alike (same instances
    per class, same costs) pooled into one group: their GPUs are interchangeable for the seats
    and the stranded slices, and the solver then has fewer, less symmetric, variables.
    ``members[g]``: the models (indices into ``Keyed.models``) of pooled group g."""

    problem: Problem
    members: tuple[tuple[int, ...], ...]

    def unpool(self, keyed: Keyed, counts: tuple[int, ...]) -> tuple[int, ...]:
        """Pooled column counts as counts of ``keyed`` (a pool's GPUs dealt to its models in
        turn; any split serves the same seats at the same cost)."""
        lookup: dict[tuple[int, tuple[int, ...], int], int] = {}
        for p, col in enumerate(keyed.problem.columns):
            lookup.setdefault((col.group, col.supply, col.cost), p)
        out = [0] * len(keyed.problem.columns)
        left = list(keyed.problem.sizes)
        for n, col in zip(counts, self.problem.columns, strict=True):
            for model in self.members[col.group]:
                take = min(n, left[model])
                if take:
                    out[lookup[model, col.supply, col.cost]] += take
                    left[model] -= take
                    n -= take
        return tuple(out)


def pooled(keyed: Keyed) -> Pooled:
    """Pool the models of ``keyed`` whose columns are alike."""
    problem = keyed.problem
    signatures: dict[tuple[tuple[tuple[int, ...], int], ...], list[int]] = {}
    for g in range(len(problem.sizes)):
        cols = {(c.supply, c.cost) for c in problem.columns if c.group == g}
        signatures.setdefault(tuple(sorted(cols)), []).append(g)
    columns = [
        Column(g, supply, cost)
        for g, signature in enumerate(signatures)
        for supply, cost in signature
    ]
    sizes = tuple(sum(problem.sizes[m] for m in models) for models in signatures.values())
    return Pooled(
        Problem(problem.classes, problem.demand, sizes, tuple(columns)),
        tuple(tuple(models) for models in signatures.values()),
    )
