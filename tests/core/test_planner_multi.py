"""The multi-requirement planner against brute force and the reference lab."""

import functools
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.layouts import Layout, maximal_layouts, stranded
from hub_ext.core.mig import GpuModel, load_catalog
from hub_ext.core.migparted import node_configs, render
from hub_ext.core.multiplan import ExtraGpus, Node, Requirement, plan_nodes

CAT = load_catalog()
A100 = CAT.model("A100-40GB")
A30 = CAT.model("A30-24GB")
GIB = 2**30


def test_reference_lab() -> None:
    nodes = (Node("room-a-1", ((A100, 5),)), Node("room-b-1", ((A100, 5),)))
    result = plan_nodes(CAT, nodes, (Requirement(50, 8 * GIB),))
    assert not result.feasible and result.seats_max == 40
    alts = set(result.alternatives)
    assert ExtraGpus("A100-SXM4-40GB", 3, 13) in alts
    assert ExtraGpus("A100-SXM4-80GB", 2, 8) in alts
    assert ExtraGpus("H100-SXM5-80GB", 2, 8) in alts
    only_2g = plan_nodes(CAT, nodes, (Requirement(50, profile="2g.10gb"),))
    assert only_2g.seats_max == 30


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


@functools.cache
def _best_allocation(profiles: tuple[tuple[str, int], ...], reqs: tuple[Requirement, ...]) -> int:
    """Most seats the pooled instances can serve: exhaustive over instance-to-requirement maps."""
    by_name = {p.name: p for m in (A100, A30) for p in m.profiles}
    remaining = [r.seats for r in reqs]
    flat = [name for name, n in profiles for _ in range(n)]

    def walk(i: int) -> int:
        if i == len(flat):
            return 0
        best = walk(i + 1)
        for j, r in enumerate(reqs):
            if remaining[j] > 0 and r.qualifies(by_name[flat[i]]):
                remaining[j] -= 1
                best = max(best, 1 + walk(i + 1))
                remaining[j] += 1
        return best

    return walk(0)


def _choices(model: GpuModel, reqs: tuple[Requirement, ...], sharing: bool) -> list[object]:
    out: list[object] = list(maximal_layouts(model))
    if sharing:
        out += [(j, r.shared_seats(model)) for j, r in enumerate(reqs) if r.shared_seats(model)]
    return out


def _brute(gpus: list[GpuModel], reqs: tuple[Requirement, ...], sharing: bool) -> tuple[int, int]:
    best = (-1, 0)
    for combo in itertools.product(*(_choices(m, reqs, sharing) for m in gpus)):
        pooled: dict[str, int] = {}
        shared = [0 for _ in reqs]
        cost = 0
        for model, choice in zip(gpus, combo, strict=True):
            if isinstance(choice, Layout):
                cost += stranded(model, choice).total
                for name, n in choice.counts().items():
                    pooled[name] = pooled.get(name, 0) + n
            else:
                j, seats = choice  # type: ignore[misc]
                shared[j] += seats
        # shared seats go first (they serve only their requirement), MIG instances the rest
        left = tuple(
            Requirement(max(r.seats - s, 0), r.min_memory_bytes, r.min_compute_slices, r.profile)
            for r, s in zip(reqs, shared, strict=True)
        )
        seats = sum(min(r.seats, s) for r, s in zip(reqs, shared, strict=True))
        seats += _best_allocation(tuple(sorted(pooled.items())), left)
        best = max(best, (seats, -cost))
    return best[0], -best[1]


requirement = st.one_of(
    st.builds(
        Requirement,
        seats=st.integers(0, 6),
        min_memory_bytes=st.sampled_from([4 * GIB, 8 * GIB, 10 * 10**9, 20 * GIB, 24 * GIB]),
        min_compute_slices=st.integers(0, 3),
    ),
    st.builds(
        Requirement,
        seats=st.integers(0, 4),
        profile=st.sampled_from(["1g.5gb", "1g.6gb", "2g.10gb", "2g.12gb", "3g.20gb", "4g.24gb"]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    a100=st.integers(0, 1),
    a30=st.integers(0, 2),
    reqs=st.lists(requirement, min_size=1, max_size=3),
    sharing=st.booleans(),
)
def test_against_brute_force(a100: int, a30: int, reqs: list[Requirement], sharing: bool) -> None:
    demand = tuple(reqs)
    nodes = (Node("x", ((A100, a100),)), Node("y", ((A30, a30),)))
    result = plan_nodes(CAT, nodes, demand, sharing)
    seats, cost = _brute([A100] * a100 + [A30] * a30, demand, sharing)
    assert result.seats_max == seats
    assert result.stranded.total == cost
    assert all(s <= r.seats for s, r in zip(result.satisfied, demand, strict=True))
    assert result.feasible == (seats == result.seats_requested)
