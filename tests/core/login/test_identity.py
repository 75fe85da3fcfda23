"""Username validation/normalisation, DN handling and group mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_ext.core.login.identity import (
    DirectoryGroup,
    GroupMapping,
    InvalidUsernameError,
    UsernamePolicy,
    UsernameProblem,
    check_course_groups,
    first_rdn_value,
    looks_like_dn,
    matching_specs,
    normalise_dn,
    normalise_username,
    password_is_blank,
    split_dn,
)

POLICY = UsernamePolicy()


def test_valid_names_are_lower_cased() -> None:
    assert normalise_username("Student01", POLICY) == "student01"
    assert normalise_username("a.b_c-d", POLICY) == "a.b_c-d"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", UsernameProblem.EMPTY),
        ("   ", UsernameProblem.EMPTY),
        (" student01", UsernameProblem.SURROUNDING_SPACE),
        ("student01\t", UsernameProblem.SURROUNDING_SPACE),
        ("stu\x00dent", UsernameProblem.CONTROL_CHARACTER),
        ("stu\u200bdent", UsernameProblem.CONTROL_CHARACTER),
        ("s" * 65, UsernameProblem.TOO_LONG),
        ("*", UsernameProblem.PATTERN),
        ("*)(uid=*))(|(uid=*", UsernameProblem.PATTERN),
        ("admin)(|(userPassword=*)", UsernameProblem.PATTERN),
        ("stüdent", UsernameProblem.PATTERN),
        ("1student", UsernameProblem.PATTERN),
    ]
    + [(f"a{c}b", UsernameProblem.PATTERN) for c in '\\#+<>,;"= '],
)
def test_bad_names_are_refused(raw: str, problem: UsernameProblem) -> None:
    with pytest.raises(InvalidUsernameError) as err:
        normalise_username(raw, POLICY)
    assert err.value.problem is problem
    assert (err.value.message and raw.strip() not in err.value.message) or raw in ("", "   ")


@given(st.text(max_size=80))
def test_accepted_names_always_match_the_pattern(raw: str) -> None:
    try:
        name = normalise_username(raw, POLICY)
    except InvalidUsernameError:
        return
    assert name == raw.lower() and name.isascii() and name[0].isalpha()
    assert not set(name) & set('*()\\\x00,;+<>#=" ')


def test_blank_passwords() -> None:
    assert password_is_blank(None) and password_is_blank("") and password_is_blank("  \t")
    assert not password_is_blank(" x ")


def test_dn_parsing_and_normalisation() -> None:
    dn = r"CN=ML101\2C A , OU=Groups,dc=Lab"
    assert split_dn(dn) == (("cn", "ML101, A"), ("ou", "Groups"), ("dc", "Lab"))
    assert normalise_dn(dn) == "cn=ml101, a,ou=groups,dc=lab"
    assert first_rdn_value("cn=ml101-a,ou=groups,dc=lab") == "ml101-a"
    assert looks_like_dn("cn=x,dc=y") and not looks_like_dn("ml101-a")
    with pytest.raises(ValueError):
        split_dn("no equals sign")


def test_group_mapping() -> None:
    a = DirectoryGroup("cn=ml101-a,ou=groups,dc=lab", "ml101-a")
    cv = DirectoryGroup("cn=cv201,ou=groups,dc=lab", "cv201")
    other = DirectoryGroup("cn=staff,ou=groups,dc=lab", "staff")
    mapping = GroupMapping.from_mapping(
        {"CN=ML101-A, OU=groups,dc=lab": "ml101-a-seminar", "cv201": "vision"}
    )
    assert mapping.hub_names([a, cv, other]) == ("ml101-a-seminar", "staff", "vision")
    strict = GroupMapping.from_mapping({"cv201": "vision"}, keep_unmapped=False)
    assert strict.hub_names([a, cv]) == ("vision",)
    specs = ["cn=ml101-a,ou=groups,dc=lab", "vision", "nope"]
    assert matching_specs(specs, [a, cv], mapping) == frozenset(specs[:2])


def test_course_access_message_names_the_missing_group() -> None:
    assert check_course_groups("s1", [], []).allowed
    assert check_course_groups("s1", ["ml101-a"], ["ML101-A"]).allowed
    denied = check_course_groups("s1", ["ml101-a"], ["cv201"])
    assert not denied.allowed and denied.missing == ("ml101-a",)
    assert "not a member of the group ml101-a" in denied.message
    two = check_course_groups("s1", ["ml101-b", "ml101-a"], [])
    assert "one of the groups ml101-a, ml101-b" in two.message
