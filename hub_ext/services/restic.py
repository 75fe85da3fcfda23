"""Runs the ``restic`` binary for the off-site backup and turns its failures into clear errors.

restic reads the repository's location, password and credentials from its environment
(``RESTIC_REPOSITORY``, ``RESTIC_PASSWORD`` or ``RESTIC_PASSWORD_FILE``, ``AWS_ACCESS_KEY_ID``,
...); the chart fills them from Secrets. :class:`Restic` passes them through unchanged and adds the
repository named on the command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from hub_ext.core.offsite import (
    BackupSummary,
    FailureKind,
    ResticRetention,
    ResticSnapshot,
    classify_failure,
    failure_advice,
    parse_backup_output,
    parse_snapshots,
)

log = logging.getLogger("labhub.backup")


class ResticError(RuntimeError):
    """restic failed; ``kind`` says why and the message says what to do."""

    def __init__(self, kind: FailureKind, message: str, output: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.output = output


@dataclass(frozen=True)
class ResticSettings:
    """Where the repository is and how restic is run."""

    repository: str
    host: str = "labhub"
    binary: str = "restic"
    timeout_seconds: float = 6 * 3600
    cache_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)


class Restic:
    """One repository, used through the restic command line."""

    def __init__(self, settings: ResticSettings) -> None:
        if not settings.repository:
            raise ResticError(
                FailureKind.NO_REPOSITORY,
                "no restic repository is set; set backup.restic.repository (or "
                "RESTIC_REPOSITORY / --repository)",
            )
        self.settings = settings

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.env)
        env["RESTIC_REPOSITORY"] = self.settings.repository
        env["TZ"] = "UTC"
        if self.settings.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.settings.cache_dir)
        return env

    def run(
        self, args: Sequence[str], *, stdin: IO[bytes] | None = None, cwd: Path | None = None
    ) -> str:
        """Run ``restic ARGS``; its standard output, or :class:`ResticError` when it fails."""
        command = [self.settings.binary, *args]
        try:
            done = subprocess.run(
                command,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                env=self._env(),
                cwd=cwd,
                timeout=self.settings.timeout_seconds,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ResticError(
                FailureKind.OTHER,
                f"the restic binary {self.settings.binary!r} is not installed or not on PATH; "
                "install the Debian package restic (the hub image has it)",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ResticError(
                FailureKind.UNREACHABLE,
                f"restic {args[0]} ran longer than {self.settings.timeout_seconds:g} s and was "
                "stopped; nothing of this run was kept. Check the link to the backup server",
            ) from exc
        stderr = done.stderr.decode(errors="replace")
        if done.returncode != 0:
            kind = classify_failure(stderr)
            log.debug("restic %s failed: %s", args[0], stderr.strip())
            raise ResticError(kind, failure_advice(kind, self.settings.repository), stderr)
        return done.stdout.decode(errors="replace")

    def open(self, *, initialize: bool = False) -> bool:
        """Check that the repository opens with the password; create it when asked.

        Returns True when the repository was created by this call.
        """
        try:
            self.run(["cat", "config"])
            return False
        except ResticError as exc:
            if exc.kind is not FailureKind.NO_REPOSITORY or not initialize:
                raise
        self.run(["init"])
        log.info("created the restic repository %s", self.settings.repository)
        return True

    def backup_path(
        self, path: Path, tags: Sequence[str], *, at: datetime | None = None
    ) -> BackupSummary:
        """Back up one directory tree as a snapshot with ``tags``."""
        args = ["backup", "--json", "--host", self.settings.host, "--one-file-system"]
        args += _tag_args(tags) + _time_args(at)
        return parse_backup_output(self.run([*args, str(path)], cwd=path))

    def backup_stream(
        self, stream: IO[bytes], filename: str, tags: Sequence[str], *, at: datetime | None = None
    ) -> BackupSummary:
        """Back up what ``stream`` yields as one file named ``filename``."""
        args = ["backup", "--json", "--host", self.settings.host, "--stdin"]
        args += ["--stdin-filename", filename, *_tag_args(tags), *_time_args(at)]
        return parse_backup_output(self.run(args, stdin=stream))

    def snapshots(self, tags: Sequence[str] = ()) -> list[ResticSnapshot]:
        """The repository's snapshots carrying all ``tags``, oldest first."""
        args = ["snapshots", "--json", "--host", self.settings.host]
        if tags:
            args += ["--tag", ",".join(tags)]
        return parse_snapshots(self.run(args))

    def forget(self, retention: ResticRetention) -> None:
        """Drop the snapshots the retention rule no longer keeps, and their data."""
        self.run([*retention.forget_args(), "--host", self.settings.host])

    def check(self) -> None:
        """Verify the repository's structure (``restic check``)."""
        self.run(["check"])

    def restore(self, snapshot: ResticSnapshot, target: Path) -> None:
        """Restore ``snapshot`` under ``target`` (restic recreates the backed-up path there)."""
        self.run(["restore", snapshot.id, "--target", str(target)])

    def dump(self, snapshot: ResticSnapshot, filename: str, out: IO[bytes]) -> None:
        """Write one file of ``snapshot`` to ``out``."""
        command = [self.settings.binary, "dump", snapshot.id, "/" + filename]
        done = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.PIPE,
            env=self._env(),
            timeout=self.settings.timeout_seconds,
            check=False,
        )
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace")
            kind = classify_failure(stderr)
            raise ResticError(kind, failure_advice(kind, self.settings.repository), stderr)


def _tag_args(tags: Sequence[str]) -> list[str]:
    return [arg for tag in tags for arg in ("--tag", tag)]


def _time_args(at: datetime | None) -> list[str]:
    if at is None:
        return []
    return ["--time", at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
