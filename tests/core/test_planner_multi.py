"""The multi-requirement planner against brute force, a per-GPU dynamic programme and the
reference lab; its programmes on their own against enumeration."""

import functools
import itertools
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.cli.plan import multi_to_json, multi_to_table
from hub_ext.core.mig.catalog import Catalog, GpuModel, MigProfile, load_catalog
from hub_ext.core.mig.layouts import maximal_layouts, stranded
from hub_ext.core.mig.migparted import node_configs, render
from hub_ext.core.mig.planner import (
    ExtraGpus,
    MultiPlan,
    Node,
    PlanTimeLimitError,
    Requirement,
    SharingFits,
    plan_nodes,
)
from hub_ext.core.mig.planner import solve as solve_module
from hub_ext.core.mig.planner.flow import seats_served, spread
from hub_ext.core.mig.planner.model import Column, Problem
from hub_ext.core.mig.planner.solve import fewest_keys, least_extra, reaches, solve

CAT = load_catalog()
A100 = CAT.model("A100-40GB")
A80 = CAT.model("A100-80GB")
H100 = CAT.model("H100-80GB")
A30 = CAT.model("A30-24GB")
MODELS = (A100, A80, H100, A30)
NO_ALTERNATIVES = Catalog(models=())
GIB = 2**30
Vec = tuple[int, ...]


def test_reference_lab() -> None:
    nodes = (Node("room-a-1", ((A100, 5),)), Node("room-b-1", ((A100, 5),)))
    result = plan_nodes(CAT, nodes, (Requirement(50, 8 * GIB),))
    assert not result.feasible and result.seats_max == 40
    alts = set(result.alternatives)
    assert ExtraGpus("A100-SXM4-40GB", 3, 13) in alts
    assert ExtraGpus("A100-SXM4-80GB", 2, 8) in alts
    assert ExtraGpus("H100-SXM5-80GB", 2, 8) in alts
    # 50 seats of 8 GiB fit without MIG: 5 per whole GPU, time-sliced
    assert result.sharing == SharingFits(50)
    shared = plan_nodes(CAT, nodes, (Requirement(50, 8 * GIB),), allow_sharing=True)
    assert shared.feasible and {g.option.layout for g in shared.gpus} == {None}
    assert shared.alternatives == () and shared.sharing is None
    only_2g = plan_nodes(CAT, nodes, (Requirement(50, profile="2g.10gb"),))
    assert only_2g.seats_max == 30
    # exact profiles are never served by a shared GPU: no sharing alternative
    assert only_2g.sharing is None and not only_2g.feasible


def test_sharing_alternative_only_when_sharing_serves_everything() -> None:
    # 12 seats of >= 30 GiB on two A100-40GB: MIG serves 2 (one 4g/7g.40gb each), sharing too
    nodes = (Node("n", ((A100, 2),)),)
    result = plan_nodes(CAT, nodes, (Requirement(12, 30 * GIB),))
    assert result.seats_max == 2 and result.sharing is None
    # 6 seats of >= 8 GiB on one A100-40GB: MIG 4, sharing 5: still short, not reported
    one = plan_nodes(CAT, (Node("n", ((A100, 1),)),), (Requirement(6, 8 * GIB),))
    assert one.seats_max == 4 and one.sharing is None


def test_mixed_requirements_and_mig_parted() -> None:
    nodes = (Node("a", ((A100, 4),)), Node("b", ((A100, 4),)))
    reqs = (Requirement(12, 8 * GIB), Requirement(4, profile="3g.20gb"))
    result = plan_nodes(CAT, nodes, reqs)
    assert result.feasible and result.satisfied == (12, 4)
    doc = render(result)
    assert doc.startswith("version: v1\nmig-configs:\n")
    for cfg in node_configs(result):
        assert f"  {cfg.config}:" in doc


def test_sharing_serves_small_seats() -> None:
    nodes = (Node("n", ((A30, 1),)),)
    assert plan_nodes(CAT, nodes, (Requirement(5, int(4.9e9)),), True).seats_max == 5
    assert plan_nodes(CAT, nodes, (Requirement(5, int(4.9 * GIB)),), True).seats_max == 4
    assert plan_nodes(CAT, nodes, (Requirement(5, int(4.9e9)),), False).seats_max == 4


def test_uniform_nodes_when_possible() -> None:
    # 7 seats of >= 4 GiB per A100-40GB: 7x 1g.5gb strands a memory slice, 6x 1g.5gb plus
    # 1x 1g.10gb strands nothing, so every GPU (and node) gets the latter
    nodes = tuple(Node(f"n{i}", ((A100, 8),)) for i in range(4))
    result = plan_nodes(CAT, nodes, (Requirement(32 * 7, 4 * GIB),))
    assert result.feasible and result.stranded.total == 0
    assert len({c.config for c in node_configs(result)}) == 1


def test_integer_search_beats_its_relaxation_gap() -> None:
    # 3 GPUs, each with 2 instances for requirement 0 or 2 for requirement 1; demand (3, 3):
    # the relaxation serves 6 seats with 1.5 GPUs each way, whole GPUs only 5
    problem = Problem((1, 2), (3, 3), (3,), (Column(0, (2, 0), 0), Column(0, (0, 2), 0)))
    best = solve(problem)
    assert best.seats == 5 == seats_served(problem, best.counts)
    assert reaches(problem, 5) and not reaches(problem, 6)


# --- brute force ---------------------------------------------------------------------------


@functools.cache
def _layout_table(model: GpuModel) -> tuple[tuple[tuple[tuple[MigProfile, int], ...], int], ...]:
    """Every maximal layout of ``model`` as (instances per profile, stranded slices), once."""
    return tuple(
        (tuple(sorted(Counter(i.profile for i in lay.instances).items(), key=str)), st.total)
        for lay in maximal_layouts(model)
        for st in (stranded(model, lay),)
    )


def _accepting(prof: MigProfile, reqs: tuple[Requirement, ...]) -> int:
    """Bitmask of the requirements (with seats) that accept an instance of ``prof``."""
    return sum(1 << j for j, r in enumerate(reqs) if r.seats and r.qualifies(prof))


def _gpu_choices(
    model: GpuModel, reqs: tuple[Requirement, ...], sharing: bool
) -> list[tuple[object, tuple[tuple[int, int], ...], int]]:
    """What one GPU can offer, as (layout key, instances counted by the set of requirements
    accepting them, stranded slices). Instances accepted by the same requirements are
    interchangeable, so per such count only the least stranded layouts matter, and those are
    interchangeable too: one key stands for them. With sharing, whole-GPU seats of one
    requirement, all under the one key "MIG disabled"."""
    best: dict[tuple[tuple[int, int], ...], int] = {}
    for counts, cost in _layout_table(model):
        pool: Counter[int] = Counter()
        for prof, n in counts:
            pool[_accepting(prof, reqs)] += n
        key = tuple(sorted((mask, n) for mask, n in pool.items() if mask))
        best[key] = min(best.get(key, cost), cost)
    out: list[tuple[object, tuple[tuple[int, int], ...], int]] = [
        (("mig", supply), supply, cost) for supply, cost in best.items()
    ]
    if sharing:
        for j, r in enumerate(reqs):
            if r.shared_seats(model) and r.seats:
                out.append(("disabled", ((1 << j, min(r.shared_seats(model), r.seats)),), 0))
    return out


def _brute(
    gpus: list[GpuModel], reqs: tuple[Requirement, ...], sharing: bool
) -> tuple[int, int, int]:
    """(most seats, fewest stranded slices for that, fewest distinct layouts for both) over
    every choice for every GPU (GPUs of one model are interchangeable, so combinations with
    repetition per model), seats by trying every split of the pooled instances among the
    requirements (``_serve``)."""
    options = [
        [
            (m, picks)
            for picks in itertools.combinations_with_replacement(_gpu_choices(m, reqs, sharing), n)
        ]
        for m, n in Counter(gpus).items()
    ]
    need = tuple(r.seats for r in reqs)
    best = (-1, 0, 0)
    for combo in itertools.product(*options):
        pooled: Counter[int] = Counter()
        cost = 0
        keys = set()
        for model, picks in combo:
            for key, counts, stranded_slices in picks:
                keys.add((model, key))
                cost += stranded_slices
                for mask, n in counts:
                    pooled[mask] += n
        best = max(best, (_serve(tuple(sorted(pooled.items())), need), -cost, -len(keys)))
    return best[0], -best[1], -best[2]


def _check_plan(result: MultiPlan, gpus: list[GpuModel], sharing: bool) -> None:
    """What every plan promises, whatever its optimality."""
    reqs = result.requirements
    assert sorted(g.model.name for g in result.gpus) == sorted(m.name for m in gpus)
    assert all(s <= r.seats for s, r in zip(result.satisfied, reqs, strict=True))
    total = [0 for _ in reqs]
    for g in result.gpus:
        seats = g.option.seats
        total = [a + b for a, b in zip(total, seats, strict=True)]
        if g.option.layout is None:
            assert sharing and sum(1 for s in seats if s) <= 1 and g.option.stranded.total == 0
            j = max(range(len(reqs)), key=lambda k: seats[k])
            assert seats[j] <= reqs[j].shared_seats(g.model)
            continue
        assert g.option.layout in maximal_layouts(g.model)
        assert g.option.stranded == stranded(g.model, g.option.layout)
        pool: Counter[int] = Counter(_accepting(i.profile, reqs) for i in g.option.layout.instances)
        # the GPU's instances can serve the seats it is given
        assert _serve(tuple(sorted(pool.items())), seats) == sum(seats)
    assert tuple(total) == result.satisfied
    assert result.feasible == (result.seats_max == result.seats_requested)


PROFILES = ["1g.5gb", "1g.6gb", "1g.10gb", "2g.10gb", "2g.12gb", "3g.20gb", "4g.24gb", "1g.20gb"]
PROFILES += ["2g.20gb", "3g.40gb"]
requirement = st.one_of(
    st.builds(
        Requirement,
        seats=st.integers(0, 6),
        min_memory_bytes=st.sampled_from(
            [4 * GIB, 8 * GIB, 10 * 10**9, 12 * 10**9, 20 * GIB, 20 * 10**9, 24 * GIB, 40 * 10**9]
        ),
        min_compute_slices=st.integers(0, 3),
    ),
    st.builds(
        Requirement,
        seats=st.integers(0, 4),
        profile=st.sampled_from(PROFILES),
    ),
)


@settings(max_examples=3000, deadline=None)
@given(
    gpus=st.lists(st.sampled_from(MODELS), min_size=1, max_size=4),
    split=st.integers(0, 3),
    reqs=st.lists(requirement, min_size=1, max_size=3),
    sharing=st.booleans(),
)
def test_against_brute_force(
    gpus: list[GpuModel], split: int, reqs: list[Requirement], sharing: bool
) -> None:
    demand = tuple(reqs)
    nodes = (
        Node("x", tuple((m, 1) for m in gpus[:split])),
        Node("y", tuple((m, 1) for m in gpus[split:])),
    )
    result = plan_nodes(NO_ALTERNATIVES, nodes, demand, sharing)
    seats, cost, layouts = _brute(gpus, demand, sharing)
    assert result.seats_max == seats
    assert result.stranded.total == cost
    assert result.distinct_layouts == layouts
    _check_plan(result, gpus, sharing)


# --- medium instances against the per-GPU dynamic programme --------------------------------


def _seat_vectors(model: GpuModel, reqs: tuple[Requirement, ...], sharing: bool) -> dict[Vec, int]:
    """Every seat vector (capped at demand) one GPU can serve, with its least stranded slices."""
    caps = tuple(r.seats for r in reqs)
    out: dict[Vec, int] = {}
    for counts, cost in _layout_table(model):
        states: set[Vec] = {tuple(0 for _ in reqs)}
        for prof, n in counts:
            targets = [j for j, r in enumerate(reqs) if r.qualifies(prof)]
            for _ in range(n):
                states |= {
                    (*v[:j], v[j] + 1, *v[j + 1 :])
                    for v in states
                    for j in targets
                    if v[j] < caps[j]
                }
        for v in states:
            out[v] = min(out.get(v, cost), cost)
    if sharing:
        for j, r in enumerate(reqs):
            v = tuple(
                min(r.shared_seats(model), r.seats) if k == j else 0 for k in range(len(reqs))
            )
            out[v] = 0
    return out


def _dp(gpus: list[GpuModel], reqs: tuple[Requirement, ...], sharing: bool) -> tuple[int, int]:
    """GPU by GPU, the least stranded slices for every reachable capped seat vector."""
    caps = tuple(r.seats for r in reqs)
    front: dict[Vec, int] = {tuple(0 for _ in reqs): 0}
    for model in gpus:
        nxt: dict[Vec, int] = {}
        for v, c in front.items():
            for w, k in _seat_vectors(model, reqs, sharing).items():
                u = tuple(min(cap, a + b) for a, b, cap in zip(v, w, caps, strict=True))
                nxt[u] = min(nxt.get(u, c + k), c + k)
        ordered = sorted(nxt.items(), key=lambda vc: (-sum(vc[0]), vc[1]))
        front = {}
        for v, c in ordered:
            if not any(
                k <= c and all(a >= b for a, b in zip(w, v, strict=True)) for w, k in front.items()
            ):
                front[v] = c
    seats, cost = max(((sum(v), -c) for v, c in front.items()))
    return seats, -cost


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    reqs=st.lists(
        st.builds(
            Requirement,
            seats=st.integers(0, 12),
            min_memory_bytes=st.sampled_from([5 * 10**9, 8 * GIB, 12 * 10**9, 20 * 10**9]),
            min_compute_slices=st.integers(0, 3),
        )
        | st.builds(
            Requirement, seats=st.integers(0, 6), profile=st.sampled_from(["2g.10gb", "3g.40gb"])
        ),
        min_size=1,
        max_size=3,
    ),
    sharing=st.booleans(),
)
def test_against_per_gpu_dp(counts: list[int], reqs: list[Requirement], sharing: bool) -> None:
    gpus = [m for m, n in zip(MODELS, counts, strict=True) for _ in range(n)]
    nodes = (Node("n", tuple((m, n) for m, n in zip(MODELS, counts, strict=True))),)
    result = plan_nodes(NO_ALTERNATIVES, nodes, tuple(reqs), sharing)
    assert (result.seats_max, result.stranded.total) == _dp(gpus, tuple(reqs), sharing)
    _check_plan(result, gpus, sharing)


# --- alternatives and large inventories ----------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    count=st.integers(0, 6),
    reqs=st.lists(requirement, min_size=1, max_size=3),
    sharing=st.booleans(),
)
def test_alternatives_are_smallest(count: int, reqs: list[Requirement], sharing: bool) -> None:
    nodes = (Node("n", ((A30, count),)),)
    result = plan_nodes(CAT, nodes, tuple(reqs), sharing)
    for alt in result.alternatives:
        model = CAT.model(alt.model)
        for extra, ok in ((alt.extra, True), (alt.extra - 1, False)):
            grown = (*nodes, Node("more", ((model, extra),)))
            assert plan_nodes(NO_ALTERNATIVES, grown, tuple(reqs), sharing).feasible == ok
        for alone, ok in ((alt.alone, True), (alt.alone - 1, False)):
            own = (Node("own", ((model, alone),)),)
            assert plan_nodes(NO_ALTERNATIVES, own, tuple(reqs), sharing).feasible == ok
    if result.feasible:
        assert result.alternatives == ()


THOUSAND = tuple(Node(f"n{i}", ((MODELS[i % 4], 8),)) for i in range(125))


def _shape(total: int) -> tuple[Requirement, ...]:
    """Half >= 8 GiB, 15% exactly 3g.20gb, 20% >= 20 GB, 15% >= 40 GB."""
    return (
        Requirement(total // 2, 8 * GIB),
        Requirement(total * 15 // 100, profile="3g.20gb"),
        Requirement(total // 5, 20 * 10**9),
        Requirement(total * 15 // 100, 40 * 10**9),
    )


def test_thousand_gpus_keep_promises() -> None:
    gpus = [MODELS[i % 4] for i in range(125) for _ in range(8)]
    nodes, reqs = THOUSAND, _shape(3000)
    result = plan_nodes(CAT, nodes, reqs)
    assert result.feasible and result.satisfied == (1500, 450, 600, 450)
    _check_plan(result, gpus, False)
    # the same inventory listed in another order plans the same seats and stranded slices
    shuffled = plan_nodes(CAT, tuple(reversed(nodes)), reqs)
    assert (shuffled.seats_max, shuffled.stranded) == (result.seats_max, result.stranded)


# --- the integer search on its own, against enumeration of every count ----------------------


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    nreq = draw(st.integers(1, 3))
    classes = tuple(sorted(draw(st.sets(st.integers(1, 2**nreq - 1), min_size=1, max_size=3))))
    sizes = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    columns = [
        Column(g, tuple(draw(st.integers(0, 3)) for _ in classes), cost)
        for g in range(len(sizes))
        for cost in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    ]
    demand = tuple(draw(st.integers(0, 8)) for _ in range(nreq))
    return Problem(classes, demand, sizes, tuple(columns))


def _splits(problem: Problem, full: bool) -> Iterator[tuple[dict[int, int], ...]]:
    """Every count vector, as one {column: count} per group: at most the group's GPUs, or
    exactly (``full``)."""
    per_group = []
    for g, size in enumerate(problem.sizes):
        cols = [p for p, c in enumerate(problem.columns) if c.group == g]
        per_group.append(
            [
                dict(zip(cols, split, strict=True))
                for split in itertools.product(range(size + 1), repeat=len(cols))
                if sum(split) == size or (not full and sum(split) < size)
            ]
        )
    return itertools.product(*per_group)


def _enumerate(problem: Problem) -> tuple[int, int]:
    """(most seats, least cost for that) over every count vector, seats by exhaustive split."""
    best = (-1, 0)
    for picks in _splits(problem, full=False):
        counts = {p: n for pick in picks for p, n in pick.items()}
        pool: Counter[int] = Counter()
        for p, n in counts.items():
            for cls, a in zip(problem.classes, problem.columns[p].supply, strict=True):
                pool[cls] += n * a
        seats = _serve(tuple(sorted(pool.items())), problem.demand)
        cost = sum(n * problem.columns[p].cost for p, n in counts.items())
        best = max(best, (seats, -cost))
    return best[0], -best[1]


@functools.cache
def _serve(pool: tuple[tuple[int, int], ...], need: Vec) -> int:
    """Most seats: every split of every class's instances among the requirements it serves."""
    if not pool:
        return 0
    (cls, count), rest = pool[0], pool[1:]
    targets = [j for j in range(len(need)) if cls >> j & 1 and need[j]]
    best = 0
    for split in itertools.product(*(range(min(count, need[j]) + 1) for j in targets)):
        if sum(split) <= count:
            left = list(need)
            for j, n in zip(targets, split, strict=True):
                left[j] -= n
            best = max(best, sum(split) + _serve(rest, tuple(left)))
    return best


@settings(max_examples=400, deadline=None)
@given(problem=problems())
def test_integer_search_against_enumeration(problem: Problem) -> None:
    expected = _enumerate(problem)
    for cuts in (solve_module._MOST_CUTS, -1):  # seats by cuts, then by flow variables
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(solve_module, "_MOST_CUTS", cuts)
            best = solve(problem)
            assert (best.seats, best.cost) == expected
            assert best.seats == seats_served(problem, best.counts)
            assert best.cost == problem.cost(best.counts)
            for g, size in enumerate(problem.sizes):
                used = [
                    n for n, c in zip(best.counts, problem.columns, strict=True) if c.group == g
                ]
                assert sum(used) <= size
            assert reaches(problem, best.seats) and not reaches(problem, best.seats + 1)


# --- the third stage on its own: fewest distinct keys, against enumeration ------------------


@st.composite
def keyed_problems(draw: st.DrawFn) -> tuple[Problem, tuple[int, ...]]:
    problem = draw(problems())
    keys = tuple(
        p.group * 10 + draw(st.integers(0, 2)) if draw(st.booleans()) else 100 + i
        for i, p in enumerate(problem.columns)
    )
    return problem, keys


def _enumerate_full(
    problem: Problem, keys: tuple[int, ...]
) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """(most seats, least cost, fewest distinct keys) over count vectors giving every GPU a
    column, and a count vector with that seats and cost (any number of keys)."""
    best = (-1, 0, 0)
    start: dict[tuple[int, int], tuple[int, ...]] = {}
    for picks in _splits(problem, full=True):
        counts = tuple(next(pick[p] for pick in picks if p in pick) for p in range(len(keys)))
        cost = sum(n * c.cost for n, c in zip(counts, problem.columns, strict=True))
        used = {k for k, n in zip(keys, counts, strict=True) if n}
        seats = seats_served(problem, counts)
        start.setdefault((seats, cost), counts)
        best = max(best, (seats, -cost, -len(used)))
    return (best[0], -best[1], -best[2]), start[best[0], -best[1]]


@settings(max_examples=400, deadline=None)
@given(keyed=keyed_problems())
def test_fewest_keys_against_enumeration(keyed: tuple[Problem, tuple[int, ...]]) -> None:
    problem, keys = keyed
    (seats, cost, fewest), start = _enumerate_full(problem, keys)
    for cuts in (solve_module._MOST_CUTS, -1):  # seats by cuts, then by flow variables
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(solve_module, "_MOST_CUTS", cuts)
            counts = fewest_keys(problem, keys, start)
        for g, size in enumerate(problem.sizes):
            used = [n for n, c in zip(counts, problem.columns, strict=True) if c.group == g]
            assert sum(used) == size
        assert seats_served(problem, counts) == seats
        assert problem.cost(counts) == cost
        assert len({k for k, n in zip(keys, counts, strict=True) if n}) == fewest


def test_many_requirements_use_flows_and_agree_with_cuts() -> None:
    # 9 requirements (more than the cut form takes: flow variables) on 12 GPUs of four models;
    # forcing the cut form (512 rows per programme) must give the same optimum
    gpus = [m for m in MODELS for _ in range(3)]
    nodes = (Node("a", tuple((m, 2) for m in MODELS)), Node("b", tuple((m, 1) for m in MODELS)))
    sizes = [4 * GIB, 5 * 10**9, 8 * GIB, 10 * 10**9, 12 * GIB, 20 * 10**9, 24 * GIB]
    reqs = tuple(Requirement(3 + i % 4, size, i % 3) for i, size in enumerate(sizes))
    reqs += (Requirement(4, profile="3g.20gb"), Requirement(2, profile="1g.10gb"))
    assert len(reqs) > solve_module._MOST_CUTS
    answers = []
    for cuts in (solve_module._MOST_CUTS, len(reqs)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(solve_module, "_MOST_CUTS", cuts)
            for sharing in (False, True):
                result = plan_nodes(CAT, nodes, reqs, sharing)
                _check_plan(result, gpus, sharing)
                optimum = (result.seats_max, result.stranded.total, result.distinct_layouts)
                answers.append((*optimum, *result.alternatives))
    assert answers[:2] == answers[2:]


def test_one_layout_per_model_when_the_demand_allows() -> None:
    # 300 seats of four shapes on 1,000 GPUs of four models: every model can run one layout
    result = plan_nodes(CAT, THOUSAND, _shape(300))
    assert result.feasible and result.stranded.total == 0
    assert result.distinct_layouts == 4
    assert len({c.config for c in node_configs(result)}) == 4


def test_hard_proofs_are_proven() -> None:
    # 504 A100-80GB and 496 A30 cannot serve 7,238 shared and MIG seats; with A100-40GB the
    # relaxation needs 456.7 more GPUs and whole GPUs need 458. Proving that 457 fall short took
    # the former hand-written search about 28,000 nodes; the solver proves it, and the answer
    # checks out both ways
    a80, a40 = CAT.model("A100-80GB"), CAT.model("A100-40GB")
    nodes = tuple(Node(f"n{i}", (((a80, A30)[i % 2], 8),)) for i in range(125))
    reqs = (
        Requirement(3079, 8 * GIB),
        Requirement(832, 5 * 10**9),
        Requirement(117, 4 * GIB),
        Requirement(3210, 12 * GIB),
    )
    result = plan_nodes(CAT, nodes, reqs, allow_sharing=True)
    assert result.seats_max == 5866 and not result.feasible and result.sharing is None
    alt = next(a for a in result.alternatives if a.model == a40.name)
    assert alt.extra == 458
    for extra, ok in ((458, True), (457, False)):
        grown = (*nodes, Node("more", ((a40, extra),)))
        assert plan_nodes(NO_ALTERNATIVES, grown, reqs, allow_sharing=True).feasible == ok
    table = multi_to_table(result)
    assert f"+458 {a40.name} (alone: 1802)\n" in table and "not ruled out" not in table
    doc = multi_to_json(result)
    assert doc["distinct_layouts_proven"] is True
    assert all(a["proven"] for a in doc["alternatives"] if a["kind"] == "more-gpus")


def test_time_limit_is_a_clear_error() -> None:
    # a limit no solve can meet: the planner says what to do rather than answer unproven
    nodes = tuple(Node(f"n{i}", ((MODELS[i % 4], 8),)) for i in range(125))
    try:
        plan_nodes(CAT, nodes, _shape(3100), time_limit=1e-9)
    except PlanTimeLimitError as exc:
        assert "--time-limit" in str(exc) and "did not prove" in str(exc)
    else:
        raise AssertionError("no PlanTimeLimitError")


def test_least_extra_against_growing() -> None:
    # 3 GPUs, each 2 seats for requirement 0 or 2 for requirement 1; demand (3, 3): 4 GPUs
    # serve it (2 + 2 each way); growing by 1 is the least, and with none of the group at all
    # 4 are needed
    cols = (Column(0, (2, 0), 0), Column(0, (0, 2), 0))
    problem = Problem((1, 2), (3, 3), (3,), cols)
    assert least_extra(problem, 0) == 1
    assert least_extra(Problem((1, 2), (3, 3), (0,), cols), 0) == 4
    # a class no column supplies: no number of GPUs serves requirement 1
    assert least_extra(Problem((1, 2), (3, 3), (3,), (Column(0, (2, 0), 0),)), 0) is None


def test_spread_makes_whole_nodes_uniform() -> None:
    # 9 + 9 + 6 GPUs of three layouts on three nodes of 8: two nodes get one layout each, the
    # third takes what is left (handing out the most used layout first would leave only one
    # uniform node: 8 A | 1 A + 7 B | 2 B + 6 C)
    out = spread([(8, True), (8, True), (8, True)], [9, 9, 6])
    nodes = [out[i : i + 8] for i in (0, 8, 16)]
    assert sum(len(set(n)) == 1 for n in nodes) == 2
    assert sorted(out) == [0] * 9 + [1] * 9 + [2] * 6
    # a node that also has GPUs of another model is never counted on to be uniform
    out = spread([(4, False), (4, True)], [4, 4])
    assert out[4:] in ([0] * 4, [1] * 4) and sorted(out) == [0] * 4 + [1] * 4
