"""Bounds on start requests: option keys, profile slugs, body size and shortened quotes."""

from __future__ import annotations

import pytest

from hub_ext.core.profiles.user_options import (
    OptionLimits,
    OptionsError,
    body_too_large,
    check_user_options,
    quote,
)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, {}),
        ({}, {}),
        ({"profile": ""}, {}),
        ({"profile": " ml-101 "}, {"profile": "ml-101"}),
        ({"profile": "a" * 63}, {"profile": "a" * 63}),
    ],
    ids=["none", "empty", "blank", "stripped", "63-characters"],
)
def test_accepted_options(options: object, expected: dict[str, str]) -> None:
    assert check_user_options(options) == expected


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"profile": "a" * 64}, "2-63 lowercase"),
        ({"profile": "ML-101"}, "2-63 lowercase"),
        ({"profile": "-ml"}, "2-63 lowercase"),
        ({"profile": 7}, "must be a course profile name"),
        ({"profile": ["ml-101"]}, "must be a course profile name"),
        ({"image": "x"}, "Unknown server option 'image'; accepted: profile"),
        ({f"k{i}": 1 for i in range(5)}, "and 2 more"),
        ("ml-101", "must be a JSON object"),
    ],
    ids=["64-chars", "upper-case", "leading-dash", "number", "list", "unknown", "many", "text"],
)
def test_refused_options(options: object, needle: str) -> None:
    with pytest.raises(OptionsError) as caught:
        check_user_options(options)
    assert caught.value.status == 400
    assert needle in str(caught.value)


def test_messages_quote_at_most_100_characters() -> None:
    with pytest.raises(OptionsError) as caught:
        check_user_options({"profile": "x" * 4_000_000})
    message = str(caught.value)
    assert len(message) < 300 and "x" * 100 in message and "x" * 101 not in message
    assert "4000000 characters" in message
    assert quote("short") == "'short'"
    assert quote(["a" * 200]).endswith("(204 characters)")


def test_body_cap() -> None:
    limits = OptionLimits(max_body_bytes=100)
    assert body_too_large(100, limits) is None
    error = body_too_large(101, limits)
    assert error is not None and error.status == 413
    assert "101 bytes" in str(error) and "at most 100 bytes" in str(error)
