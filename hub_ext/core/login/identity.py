"""Login names and directory groups: validation, normalisation and group-name mapping.

Pure logic shared by the LDAP and OIDC authenticators. A login name typed by a person is checked
and normalised *before* it reaches a directory, and directory groups (LDAP DNs or OIDC claim
values) are turned into JupyterHub group names the same way for every authenticator.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import NewType

Username = NewType("Username", str)
HubGroup = NewType("HubGroup", str)

DEFAULT_USERNAME_PATTERN = r"^[a-z][.a-z0-9_-]*$"
DEFAULT_MAX_USERNAME_LENGTH = 64


class UsernameProblem(Enum):
    """Why a login name was refused."""

    EMPTY = "empty"
    SURROUNDING_SPACE = "surrounding_space"
    CONTROL_CHARACTER = "control_character"
    TOO_LONG = "too_long"
    PATTERN = "pattern"


class InvalidUsernameError(ValueError):
    """A login name that cannot be sent to a directory; the message is safe to show."""

    def __init__(self, problem: UsernameProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class UsernamePolicy:
    """Which login names are accepted.

    ``pattern`` is matched against the normalised (lower-cased when ``lowercase``) name.
    """

    pattern: str = DEFAULT_USERNAME_PATTERN
    max_length: int = DEFAULT_MAX_USERNAME_LENGTH
    lowercase: bool = True


def _describe_pattern(pattern: str) -> str:
    if pattern == DEFAULT_USERNAME_PATTERN:
        return (
            "a campus username starts with a letter and contains only lowercase letters, "
            "digits, '.', '_' and '-'"
        )
    return f"a campus username must match the pattern {pattern}"


def normalise_username(raw: str, policy: UsernamePolicy) -> Username:
    """Return the normalised login name or raise :class:`InvalidUsernameError`.

    Leading or trailing spaces, control characters (NUL included) and over-long names are
    refused, never silently repaired; the name is lower-cased (when the policy says so) and must
    then match the policy's pattern, which keeps LDAP filter and DN special characters out.
    """
    if raw == "" or raw.strip() == "":
        raise InvalidUsernameError(UsernameProblem.EMPTY, "enter your campus username")
    if raw != raw.strip():
        raise InvalidUsernameError(
            UsernameProblem.SURROUNDING_SPACE,
            "the username must not start or end with spaces; type it without them",
        )
    if any(unicodedata.category(ch).startswith("C") for ch in raw):
        raise InvalidUsernameError(
            UsernameProblem.CONTROL_CHARACTER,
            "the username contains invisible control characters; type it again",
        )
    if len(raw) > policy.max_length:
        raise InvalidUsernameError(
            UsernameProblem.TOO_LONG,
            f"the username is longer than {policy.max_length} characters; use your campus username",
        )
    name = raw.lower() if policy.lowercase else raw
    if not re.fullmatch(policy.pattern, name):
        raise InvalidUsernameError(
            UsernameProblem.PATTERN, f"invalid username: {_describe_pattern(policy.pattern)}"
        )
    return Username(name)


def password_is_blank(password: str | None) -> bool:
    """True when a password is missing, empty or only white space (never sent to a bind)."""
    return password is None or password.strip() == ""


# --- distinguished names ---------------------------------------------------------------------


#: DNs seen by a hub are few (the configured groups, the groups and people of one directory) and
#: every login and group re-check compares them again: their parsed forms are kept.
_DN_CACHE_SIZE = 4096


def split_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """Split an RFC 4514 DN string into ``(attribute, value)`` pairs, unescaping values.

    Multi-valued RDNs (``a=1+b=2``) are kept as one value. Raises ``ValueError`` for text that is
    not a DN.
    """
    parts = _split_dn(dn)
    if parts is None:
        raise ValueError(f"not a distinguished name: {dn!r}")
    return parts


@lru_cache(maxsize=_DN_CACHE_SIZE)
def _split_dn(dn: str) -> tuple[tuple[str, str], ...] | None:
    """:func:`split_dn`, None for text that is not a DN (cached, failures included)."""
    parts: list[tuple[str, str]] = []
    attr: str | None = None
    buf: list[str] = []
    i = 0
    while i < len(dn):
        ch = dn[i]
        if ch == "\\" and i + 1 < len(dn):
            nxt = dn[i + 1]
            hexpair = dn[i + 1 : i + 3]
            if re.fullmatch(r"[0-9a-fA-F]{2}", hexpair):
                buf.append(chr(int(hexpair, 16)))
                i += 3
                continue
            buf.append(nxt)
            i += 2
            continue
        if ch == "=" and attr is None:
            attr = "".join(buf).strip()
            buf = []
        elif ch in ",;":
            if attr is None:
                return None
            parts.append((attr.lower(), "".join(buf).strip()))
            attr, buf = None, []
        else:
            buf.append(ch)
        i += 1
    if attr is None:
        return None
    parts.append((attr.lower(), "".join(buf).strip()))
    return tuple(parts)


@lru_cache(maxsize=_DN_CACHE_SIZE)
def normalise_dn(dn: str) -> str:
    """A comparable form of a DN: attribute names and values lower-cased, spacing removed."""
    parts = _split_dn(dn)
    if parts is None:
        return dn.strip().lower()
    return ",".join(f"{a}={v.lower()}" for a, v in parts)


def looks_like_dn(text: str) -> bool:
    """True when ``text`` parses as a DN with at least two components (``cn=x,dc=y``)."""
    parts = _split_dn(text)
    return parts is not None and len(parts) >= 2


def first_rdn_value(dn: str) -> str:
    """The value of the first RDN, e.g. ``ml101-a`` for ``cn=ml101-a,ou=groups,dc=lab``."""
    return split_dn(dn)[0][1]


# --- groups ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryGroup:
    """A group the directory reports for a user: its DN (may be empty for OIDC) and name."""

    dn: str
    name: str


@dataclass(frozen=True)
class GroupMapping:
    """How directory groups become JupyterHub groups.

    ``explicit`` maps a group DN (compared normalised) or a plain group name to a hub group name.
    Groups not in ``explicit`` keep their own name when ``keep_unmapped`` is true and are
    dropped otherwise.
    """

    explicit: tuple[tuple[str, str], ...] = ()
    keep_unmapped: bool = True

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str], keep_unmapped: bool = True) -> GroupMapping:
        return cls(tuple(sorted(mapping.items())), keep_unmapped)

    def _lookup(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for key, value in self.explicit:
            table[normalise_dn(key) if looks_like_dn(key) else key.lower()] = value
        return table

    def hub_name(self, group: DirectoryGroup) -> HubGroup | None:
        """The JupyterHub group for one directory group, or None when it is not mapped."""
        table = self._lookup()
        if group.dn and normalise_dn(group.dn) in table:
            return HubGroup(table[normalise_dn(group.dn)])
        if group.name and group.name.lower() in table:
            return HubGroup(table[group.name.lower()])
        if self.keep_unmapped and group.name:
            return HubGroup(group.name)
        return None

    def hub_names(self, groups: Iterable[DirectoryGroup]) -> tuple[HubGroup, ...]:
        names = {n for g in groups if (n := self.hub_name(g)) is not None}
        return tuple(sorted(names))


def group_matches(spec: str, group: DirectoryGroup, mapping: GroupMapping) -> bool:
    """True when a configured group (a DN, a directory name or a hub name) names ``group``."""
    if looks_like_dn(spec):
        return bool(group.dn) and normalise_dn(spec) == normalise_dn(group.dn)
    wanted = spec.lower()
    hub = mapping.hub_name(group)
    return (hub is not None and hub.lower() == wanted) or group.name.lower() == wanted


def matching_specs(
    specs: Iterable[str], groups: Iterable[DirectoryGroup], mapping: GroupMapping
) -> frozenset[str]:
    """The configured group specs that at least one of ``groups`` satisfies."""
    group_list = tuple(groups)
    return frozenset(s for s in specs if any(group_matches(s, g, mapping) for g in group_list))


@dataclass(frozen=True)
class CourseAccess:
    """The outcome of checking a user's groups against a course's required groups."""

    allowed: bool
    missing: tuple[str, ...]
    message: str


def check_course_groups(
    username: str, required: Iterable[str], have: Iterable[str]
) -> CourseAccess:
    """Check that a user holds at least one of the ``required`` hub groups.

    An empty ``required`` means the course is open to every user who may log in.
    """
    req = tuple(sorted(set(required)))
    held = {h.lower() for h in have}
    if not req or any(r.lower() in held for r in req):
        return CourseAccess(True, (), "")
    what = f"the group {req[0]}" if len(req) == 1 else "one of the groups " + ", ".join(req)
    message = (
        f"{username} is not a member of {what}, which this course requires; "
        "ask the course's lecturer to add you, then log in again"
    )
    return CourseAccess(False, req, message)
