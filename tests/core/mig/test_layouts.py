from hub_ext.core.mig.catalog import Placement, load_catalog
from hub_ext.core.mig.layouts import Instance, addable, is_valid, maximal_layouts, stranded


def test_validity_rules() -> None:
    m = load_catalog().model("A100-40GB")
    p3 = m.profile("3g.20gb")
    p4 = m.profile("4g.20gb")
    assert is_valid(m, (Instance(p3, Placement(0, 4)), Instance(p3, Placement(4, 4))))
    assert not is_valid(m, (Instance(p3, Placement(2, 4)),))  # placement not allowed
    assert not is_valid(m, (Instance(p3, Placement(0, 4)), Instance(p4, Placement(0, 4))))
    # 4g + 3g = 7 compute fits; 4g + 2x 2g = 8 compute does not
    p2 = m.profile("2g.10gb")
    assert is_valid(m, (Instance(p4, Placement(0, 4)), Instance(p3, Placement(4, 4))))
    assert not is_valid(
        m,
        (
            Instance(p4, Placement(0, 4)),
            Instance(p2, Placement(4, 2)),
            Instance(p2, Placement(6, 2)),
        ),
    )


def test_maximal_layouts_are_maximal_and_stable() -> None:
    c = load_catalog()
    a100 = c.model("A100-40GB")
    lays = maximal_layouts(a100)
    assert len(lays) == 78
    assert len(maximal_layouts(c.model("A30-24GB"))) == 5
    for lay in lays:
        assert is_valid(a100, lay.instances)
        assert addable(a100, lay) == ()
    assert any(lay.counts() == {"1g.10gb": 4} for lay in lays)
    assert any(lay.counts() == {"7g.40gb": 1} for lay in lays)


def test_stranded() -> None:
    m = load_catalog().model("A100-40GB")
    lay = next(lay for lay in maximal_layouts(m) if lay.counts() == {"1g.10gb": 4})
    assert stranded(m, lay).compute_slices == 3 and stranded(m, lay).memory_slices == 0
    lay = next(lay for lay in maximal_layouts(m) if lay.counts() == {"3g.20gb": 2})
    s = stranded(m, lay)
    assert (s.memory_slices, s.compute_slices) == (0, 1)
    assert all(lay.counts() != {"2g.10gb": 3} for lay in maximal_layouts(m))
