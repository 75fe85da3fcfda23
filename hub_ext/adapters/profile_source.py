"""Course profiles from a directory (a git-sync checkout), reloaded on change.

A course whose new file is broken keeps serving its last good version; reload errors are logged,
counted in ``reload_errors_total`` and passed to an optional callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from hub_ext.core.profiles import CourseProfile, ProfileError, parse_profile

log = logging.getLogger(__name__)


class ProfileSource:
    """Keeps the last good profile of every course folder under ``root``."""

    def __init__(
        self,
        root: Path,
        on_error: Callable[[list[ProfileError]], None] | None = None,
        interval: float = 10.0,
    ) -> None:
        self.root = root
        self.interval = interval
        self.on_error = on_error
        self.reload_errors_total = 0
        self.reloads_total = 0
        self._profiles: dict[str, CourseProfile] = {}
        self._hashes: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def profiles(self) -> dict[str, CourseProfile]:
        return dict(self._profiles)

    def reload(self) -> list[ProfileError]:
        """Re-read changed files (follows git-sync's symlink swap via resolve())."""
        base = self.root.resolve()
        errors: list[ProfileError] = []
        for path in sorted(base.glob("*/profile.yaml")):
            folder = path.parent.name
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if self._hashes.get(folder) == digest:
                continue
            self._hashes[folder] = digest
            profile, errs = parse_profile(data.decode("utf-8", "replace"), f"{folder}/profile.yaml")
            if profile is not None and profile.slug != folder:
                errs = [
                    ProfileError(
                        f"{folder}/profile.yaml", None, "slug", "must equal the folder name", folder
                    )
                ]
            if errs:
                errors.extend(errs)
            elif profile is not None:
                self._profiles[folder] = profile
        self.reloads_total += 1
        if errors:
            self.reload_errors_total += 1
            for e in errors:
                log.warning("profile reload: %s (keeping last good version)", e)
            if self.on_error is not None:
                self.on_error(errors)
        return errors

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
