import pytest

from hub_ext.core.mig.catalog import (
    Placement,
    UnknownGpuModelError,
    UnknownProfileError,
    load_catalog,
)


def starts(model: str, profile: str) -> set[int]:
    return {p.start for p in load_catalog().model(model).profile(profile).placements}


def test_a100_40gb_placement_tables() -> None:
    m = load_catalog().model("A100-SXM4-40GB")
    assert starts("A100-40GB", "1g.5gb") == set(range(7))
    assert starts("A100-40GB", "1g.10gb") == {0, 2, 4, 6}
    assert starts("A100-40GB", "2g.10gb") == {0, 2, 4}
    assert starts("A100-40GB", "3g.20gb") == {0, 4}
    assert m.profile("4g.20gb").placements == (Placement(0, 4),)
    assert m.profile("7g.40gb").placements == (Placement(0, 8),)
    assert m.profile("1g.10gb").max_instances == 4
    assert [m.profile(n).memory_mib for n in ("1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb")] == [
        4864,
        9856,
        19968,
        40192,
    ]


def test_lookup_by_gfd_product_and_case() -> None:
    c = load_catalog()
    assert c.model("NVIDIA-H100-80GB-HBM3").name == "H100-SXM5-80GB"
    assert c.model("nvidia-a100-sxm4-40gb").name == "A100-SXM4-40GB"
    assert c.model("NVIDIA-A100-PCIE-40GB").name == "A100-PCIE-40GB"
    assert c.model("A100-80GB").profile("1g.20gb").max_instances == 4


def test_unknown_names_list_accepted() -> None:
    c = load_catalog()
    with pytest.raises(UnknownGpuModelError, match="A100-SXM4-40GB"):
        c.model("V100")
    with pytest.raises(UnknownProfileError, match=r"7g\.40gb"):
        c.model("A100-40GB").profile("9g.99gb")


def test_every_profile_fits_its_model() -> None:
    for m in load_catalog().models:
        for p in m.profiles:
            assert p.max_instances >= 1 and p.compute_slices <= m.compute_slices
            for pl in p.placements:
                assert pl.size == p.memory_slices and pl.start + pl.size <= m.memory_slices
