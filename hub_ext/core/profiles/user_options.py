"""Bounds on what a student sends to start a server: the request body and each option value.

The spawn endpoints accept small, untrusted input: a course profile slug and nothing else.
:func:`check_user_options` checks one options object (from the REST API or the spawn form)
before anything is stored or logged, and :func:`quote` shortens any value an error message or a
log line repeats, so that a 4 MB value costs a few hundred bytes of answer and log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 16 * 1024
"""Default cap on the body of a spawn or option request (a profile choice needs ~50 bytes)."""
MAX_QUOTE = 100
"""Characters of an input that an error message or a log line repeats at most."""
MAX_SLUG = 63
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
OPTION_KEYS = ("profile",)


class OptionsError(ValueError):
    """A bad options object; ``status`` is the HTTP status to answer with (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OptionLimits:
    """The caps applied to spawn requests."""

    max_body_bytes: int = MAX_BODY_BYTES


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr`` of ``value`` cut to ``limit`` characters, saying how much was left out."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    shown = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{shown}... ({len(text)} characters)"


def body_too_large(size: int, limits: OptionLimits) -> OptionsError | None:
    """The error for a request body of ``size`` bytes, or None when it is within the cap."""
    if size <= limits.max_body_bytes:
        return None
    return OptionsError(
        f"The request body has {size} bytes; a server start accepts at most "
        f"{limits.max_body_bytes} bytes (a course profile name). Send only the profile to start.",
        413,
    )


def check_profile_slug(value: object) -> str:
    """A profile slug as sent (stripped), or OptionsError saying what is accepted."""
    if not isinstance(value, str):
        raise OptionsError(
            f"The profile choice must be a course profile name (text), not {quote(value, 40)}."
        )
    slug = value.strip()
    if slug and (len(slug) > MAX_SLUG or not SLUG.fullmatch(slug)):
        raise OptionsError(
            f"There is no course profile {quote(slug)}: a profile name has 2-{MAX_SLUG} "
            "lowercase letters, digits and '-'. Choose one of your courses' profiles."
        )
    return slug


def check_user_options(options: object) -> dict[str, str]:
    """The options with only known keys, each value checked; OptionsError for anything else.

    ``None`` and ``{}`` mean "no choice" (the hub then uses the only profile the student may
    use, or asks to choose).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise OptionsError(
            f'The server options must be a JSON object such as {{"profile": "ml-101"}}, '
            f"not {quote(options, 40)}."
        )
    unknown = sorted(str(k) for k in options if k not in OPTION_KEYS)
    if unknown:
        names = ", ".join(quote(k, 40) for k in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise OptionsError(
            f"Unknown server option {names}{more}; accepted: {', '.join(OPTION_KEYS)}."
        )
    out: dict[str, str] = {}
    if "profile" in options:
        slug = check_profile_slug(options["profile"])
        if slug:
            out["profile"] = slug
    return out
