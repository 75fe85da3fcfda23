import pytest

from hub_ext.core.units import SizeError, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8GiB", 8 * 2**30),
        ("8 GiB", 8 * 2**30),
        ("8Gi", 8 * 2**30),
        ("10GB", 10 * 10**9),
        ("10 GB", 10 * 10**9),
        ("10G", 10 * 10**9),
        ("512MiB", 512 * 2**20),
        ("512Mi", 512 * 2**20),
        ("1234", 1234),
    ],
)
def test_parse(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "GB", "8 parsecs", "-1GB"])
def test_bad(text: str) -> None:
    with pytest.raises(SizeError, match="accepted forms"):
        parse_size(text)


def test_format() -> None:
    assert format_size(8 * 2**30) == "8 GiB"
    assert format_size(10**10, binary=False) == "10 GB"
    assert format_size(12) == "12 B"
