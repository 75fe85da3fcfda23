"""Course profiles from directories (git-sync checkouts), reloaded on change.

A course whose new file is broken keeps serving its last good version; when a whole reload fails
(a directory or the policy file cannot be read) the last good set stays in place. Reload errors
are logged, counted in ``reload_errors_total``, kept in ``last_errors`` and passed to an
optional callback. ``images.lock.yaml`` in a directory pins the image digests of its courses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from hub_ext.core.admission.rules import policy_keys
from hub_ext.core.profiles.model import CourseProfile, ImageRef, ProfileError
from hub_ext.core.profiles.policy import Policy, parse_policy
from hub_ext.core.profiles.set import (
    LOCK_FILE,
    ProfileFile,
    ProfileSet,
    build_set,
    merge_last_good,
    parse_lock,
)

log = logging.getLogger(__name__)
MAX_FILE_BYTES = 1024 * 1024


def read_profile_dirs(
    roots: Sequence[Path], policy_file: Path | None = None
) -> tuple[ProfileSet, list[str]]:
    """Read and validate every ``<root>/<course>/profile.yaml``; returns the set and the course
    folders present. Raises OSError or ValueError when a directory or the policy is unreadable."""
    policy = Policy()
    if policy_file is not None:
        policy = parse_policy(policy_file.read_text(encoding="utf-8"), policy_keys())
    files: list[ProfileFile] = []
    locks: dict[str, dict[str, ImageRef]] = {}
    lock_errors: list[ProfileError] = []
    present: list[str] = []
    for root in roots:
        base = root.resolve()
        if not base.is_dir():
            raise OSError(f"profiles directory {root} does not exist or is not a directory")
        label = str(root)
        lock = base / LOCK_FILE
        if lock.is_file():
            pins, errs = parse_lock(_read(lock), f"{root}/{LOCK_FILE}")
            locks[label] = pins
            lock_errors.extend(errs)
        for path in sorted(base.glob("*/profile.yaml")):
            folder = path.parent.name
            present.append(folder)
            name = f"{root}/{folder}/profile.yaml" if len(roots) > 1 else f"{folder}/profile.yaml"
            files.append(ProfileFile(label, folder, name, _read(path)))
    result = build_set(files, policy, locks)
    if lock_errors:
        result = ProfileSet(
            result.profiles,
            result.errors + tuple(lock_errors),
            result.warnings,
            result.failed,
        )
    return result, present


def _read(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return data[: MAX_FILE_BYTES + 1].decode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def _fingerprint(roots: Sequence[Path], policy_file: Path | None) -> str:
    digest = hashlib.sha256()
    paths: list[Path] = [policy_file] if policy_file else []
    for root in roots:
        base = root.resolve()
        paths += [base / LOCK_FILE, *sorted(base.glob("*/profile.yaml"))]
    for path in paths:
        digest.update(str(path).encode())
        with contextlib.suppress(OSError):
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def no_courses_message(roots: Sequence[Path]) -> str:
    """The error for a profiles path that holds no ``<course>/profile.yaml`` at all."""
    where = ", ".join(str(r) for r in roots)
    return (
        f"found 0 courses at {where}: no <course>/profile.yaml folder there; point the hub at "
        "the folder that holds the course folders (chart value labhub.profiles.git.subPath "
        "for profiles from git, `profiles` in a copy of the LabHub repository)"
    )


class ProfileSource:
    """Keeps the last good profile of every course folder under ``root`` (or ``roots``)."""

    def __init__(
        self,
        root: Path | Sequence[Path],
        on_error: Callable[[list[ProfileError]], None] | None = None,
        interval: float = 10.0,
        policy_file: Path | None = None,
    ) -> None:
        self.roots: tuple[Path, ...] = (root,) if isinstance(root, Path) else tuple(root)
        self.root = self.roots[0]
        self.interval = interval
        self.on_error = on_error
        self.policy_file = policy_file
        self.reload_errors_total = 0
        self.reloads_total = 0
        self.last_errors: tuple[ProfileError, ...] = ()
        self.warnings: tuple[ProfileError, ...] = ()
        self._profiles: dict[str, CourseProfile] = {}
        self._fingerprint = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def profiles(self) -> dict[str, CourseProfile]:
        return dict(self._profiles)

    def reload(self) -> list[ProfileError]:
        """Re-read when any file changed (follows git-sync's symlink swap via resolve());
        returns the errors of this reload, an empty list when nothing changed."""
        self.reloads_total += 1
        try:
            fingerprint = _fingerprint(self.roots, self.policy_file)
            if fingerprint == self._fingerprint:
                return []
            result, present = read_profile_dirs(self.roots, self.policy_file)
        except (OSError, ValueError) as exc:
            errors = [ProfileError(str(self.root), None, "", f"reload failed: {exc}")]
            self._report(errors, "keeping the last good set of courses")
            return errors
        self._fingerprint = fingerprint
        self._profiles = merge_last_good(self._profiles, result, present)
        self.warnings = result.warnings
        for warning in result.warnings:
            log.info("course profile: %s", warning)
        errors = list(result.errors)
        if not present:
            errors.append(ProfileError(str(self.root), None, "", no_courses_message(self.roots)))
        self.last_errors = tuple(errors)
        if errors:
            self._report(errors, "keeping the last good version")
        return errors

    def _report(self, errors: list[ProfileError], action: str) -> None:
        self.reload_errors_total += 1
        self.last_errors = tuple(errors)
        for error in errors:
            log.warning("profile reload: %s (%s)", error, action)
        if self.on_error is not None:
            self.on_error(errors)

    async def _run(self) -> None:
        while True:
            self.reload()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
