import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.layouts import maximal_layouts
from hub_ext.core.mig import load_catalog
from hub_ext.core.planner import Alternative, SeatRequirement, layout_seats, plan
from hub_ext.core.units import parse_size

CAT = load_catalog()


def test_reference_lab() -> None:
    a100 = CAT.model("A100-40GB")
    req = SeatRequirement(50, parse_size("8GiB"))
    result = plan(CAT, ((a100, 10),), req)
    assert not result.feasible and result.seats_max == 40
    alts = set(result.alternatives)
    assert Alternative("A100-SXM4-40GB", 13) in alts
    assert Alternative("A100-SXM4-80GB", 8) in alts
    assert Alternative("H100-SXM5-80GB", 8) in alts
    only_2g = max(lay.counts().get("2g.10gb", 0) for lay in maximal_layouts(a100))
    assert only_2g * 10 == 30


def test_sharing_gb_vs_gib() -> None:
    a30 = CAT.model("A30-24GB")
    # 24 GiB card: 5 seats of 4.9 GB fit when shared, 5 seats of 4.9 GiB do not
    assert plan(CAT, ((a30, 1),), SeatRequirement(5, parse_size("4.9GB")), True).seats_max == 5
    assert plan(CAT, ((a30, 1),), SeatRequirement(5, parse_size("4.9GiB")), True).seats_max == 4


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 2), min_size=2, max_size=2),
    mem_gib=st.integers(1, 45),
    seats=st.integers(0, 30),
)
def test_against_brute_force(counts: list[int], mem_gib: int, seats: int) -> None:
    models = (CAT.model("A100-40GB"), CAT.model("A30-24GB"))
    req = SeatRequirement(seats, mem_gib * 2**30)
    inventory = tuple(zip(models, counts, strict=True))
    result = plan(CAT, inventory, req)
    gpus = [m for m, n in inventory for _ in range(n)]
    best = 0
    for combo in itertools.product(*(maximal_layouts(m) for m in gpus)):
        best = max(best, sum(layout_seats(lay, req) for lay in combo))
    assert result.seats_max == best
    assert result.feasible == (best >= seats)
