"""A set of course profiles from one or more profile directories, with pinned image digests.

Pure logic: the caller reads the files (see :mod:`hub_ext.adapters.profile_source`) and passes
their text. Each directory may hold a lock file, ``images.lock.yaml``, written by
``labhub profiles pin``, that maps a course slug to the image reference with the digest that CI
pushed (``registry/repo:tag@sha256:...``); the hub then starts exactly that digest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import yaml

from hub_ext.core.profiles.build import parse_profile
from hub_ext.core.profiles.model import CourseProfile, ImageRef
from hub_ext.core.profiles.policy import Policy
from hub_ext.core.profiles.validation import ProfileError

LOCK_FILE = "images.lock.yaml"
_PINNED = re.compile(
    r"^(?P<repo>[^:@\s]+(?::\d+)?/[^:@\s]+):(?P<tag>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
PINNED_FORM = "registry/repository:tag@sha256:<64 hex digits>"


@dataclass(frozen=True)
class ProfileFile:
    """The text of one ``<root>/<folder>/profile.yaml``; ``name`` is how errors cite it."""

    root: str
    folder: str
    name: str
    text: str


@dataclass(frozen=True)
class ProfileSet:
    """The valid profiles (by slug order), the errors and the non-fatal warnings."""

    profiles: tuple[CourseProfile, ...]
    errors: tuple[ProfileError, ...]
    warnings: tuple[ProfileError, ...] = ()
    failed: tuple[str, ...] = ()  # slugs (folder names) whose file did not validate

    def by_slug(self) -> dict[str, CourseProfile]:
        return {p.slug: p for p in self.profiles}


def parse_lock(text: str, name: str) -> tuple[dict[str, ImageRef], list[ProfileError]]:
    """``slug: registry/repo:tag@sha256:...`` entries of a lock file; bad entries are errors."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return {}, [ProfileError(name, line, "", f"invalid YAML: {exc}", "slug: " + PINNED_FORM)]
    if not isinstance(data, dict):
        return {}, [
            ProfileError(name, 1, "", "lock file must be a mapping", "slug: " + PINNED_FORM)
        ]
    pins: dict[str, ImageRef] = {}
    errors: list[ProfileError] = []
    for slug, ref in data.items():
        match = _PINNED.match(ref) if isinstance(ref, str) else None
        if match is None:
            errors.append(
                ProfileError(name, None, str(slug), f"{ref!r} is not a pinned image", PINNED_FORM)
            )
            continue
        pins[str(slug)] = ImageRef(match["repo"], match["tag"], match["digest"])
    return pins, errors


def render_lock(pins: Mapping[str, ImageRef]) -> str:
    """Lock file text, sorted by slug, with a header saying how it is written."""
    lines = ["# Written by `labhub profiles pin` in CI; the hub starts these digests."]
    lines += [f"{slug}: {pins[slug].reference}" for slug in sorted(pins)]
    return "\n".join(lines) + "\n"


def pin(profile: CourseProfile, pins: Mapping[str, ImageRef]) -> tuple[CourseProfile, str]:
    """The profile with its pinned digest; a warning text when the lock does not match."""
    pinned = pins.get(profile.slug)
    if pinned is None:
        return profile, f"image {profile.image.reference} is not pinned; run labhub profiles pin"
    if (pinned.repository, pinned.tag) != (profile.image.repository, profile.image.tag):
        return profile, (
            f"lock pins {pinned.repository}:{pinned.tag}, profile names "
            f"{profile.image.reference}; using the unpinned tag until CI pins it"
        )
    return replace(profile, image=pinned), ""


def build_set(
    files: Iterable[ProfileFile],
    policy: Policy,
    locks: Mapping[str, Mapping[str, ImageRef]] | None = None,
) -> ProfileSet:
    """Validate every file, apply the lock of its root, and refuse duplicate slugs."""
    found: dict[str, tuple[CourseProfile, str]] = {}
    errors: list[ProfileError] = []
    warnings: list[ProfileError] = []
    failed: list[str] = []
    for item in files:
        profile, errs = parse_profile(item.text, item.name, policy)
        if profile is not None and profile.slug != item.folder:
            errs = [
                ProfileError(
                    item.name,
                    _slug_line(item.text),
                    "slug",
                    f"{profile.slug!r} must equal the folder name",
                    item.folder,
                )
            ]
        if profile is not None and not errs and profile.slug in found:
            first = found[profile.slug][1]
            errs = [
                ProfileError(
                    item.name,
                    _slug_line(item.text),
                    "slug",
                    f"duplicate slug {profile.slug!r}, already defined in {first}",
                    "one folder per course across all profile directories",
                )
            ]
        if errs or profile is None:
            errors.extend(errs)
            failed.append(item.folder)
            continue
        profile, warning = pin(profile, (locks or {}).get(item.root, {}))
        if warning:
            warnings.append(ProfileError(item.name, None, "image", warning))
        found[profile.slug] = (profile, item.name)
    ordered = tuple(found[s][0] for s in sorted(found))
    return ProfileSet(ordered, tuple(errors), tuple(warnings), tuple(failed))


def _slug_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("slug:"):
            return number
    return None


def merge_last_good(
    previous: Mapping[str, CourseProfile], new: ProfileSet, present: Sequence[str]
) -> dict[str, CourseProfile]:
    """The new valid profiles, plus the last good version of every course whose folder is still
    present but whose new file failed; courses whose folder was removed are dropped."""
    merged = new.by_slug()
    for slug in new.failed:
        if slug in previous and slug in present and slug not in merged:
            merged[slug] = previous[slug]
    return dict(sorted(merged.items()))
