"""Off-site backups with restic: the rules, without running restic.

The backup job (:mod:`hub_ext.services.offsite`) runs ``restic`` against a repository in the other
server room. Everything it decides is here, as pure functions over the data restic prints:

* the arguments of ``restic forget --prune`` for the configured daily/weekly/monthly counts;
* reading the ``summary`` message of ``restic backup --json`` (what a run added);
* telling a wrong password, a missing repository and an unreachable one apart from restic's
  messages, with what the operator should do about each;
* whether the periodic ``restic check`` is due;
* which snapshot ``labhub-backup restore STUDENT --at TIME`` means;
* the Prometheus text of the job's metrics.

Snapshots are tagged ``labhub-home`` plus ``student=<name>`` for homes and ``labhub-hubdb`` for
the hub database, so that retention and restores work per student.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import Enum

TAG_HOME = "labhub-home"
TAG_HUBDB = "labhub-hubdb"
STUDENT_TAG_PREFIX = "student="
_STUDENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class OffsiteError(ValueError):
    """A setting or an input of the off-site backup is wrong; the message says how to fix it."""


def student_tag(student: str) -> str:
    """The restic tag of ``student``'s home snapshots (``student=<name>``)."""
    if not _STUDENT.match(student):
        raise OffsiteError(
            f"{student!r} is not a student name LabHub uses: lower-case letters, digits, '.', "
            "'_' and '-', starting with a letter or digit"
        )
    return STUDENT_TAG_PREFIX + student


@dataclass(frozen=True)
class ResticRetention:
    """How many daily, weekly and monthly snapshots ``restic forget`` keeps per home."""

    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6

    def __post_init__(self) -> None:
        if self.keep_daily < 1:
            raise OffsiteError(
                f"keepDaily must be at least 1 (got {self.keep_daily}): the newest backup is "
                "always kept"
            )
        for name, value in (("keepWeekly", self.keep_weekly), ("keepMonthly", self.keep_monthly)):
            if value < 0:
                raise OffsiteError(f"{name} must be 0 or more (got {value})")

    def forget_args(self) -> tuple[str, ...]:
        """Arguments of ``restic forget --prune``, grouped so that every home keeps its own."""
        args = ["forget", "--prune", "--group-by", "host,tags", f"--keep-daily={self.keep_daily}"]
        if self.keep_weekly:
            args.append(f"--keep-weekly={self.keep_weekly}")
        if self.keep_monthly:
            args.append(f"--keep-monthly={self.keep_monthly}")
        return tuple(args)


@dataclass(frozen=True)
class BackupSummary:
    """The ``summary`` message of one ``restic backup --json`` run."""

    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int
    data_blobs: int
    tree_blobs: int
    total_bytes_processed: int
    duration_seconds: float


def parse_backup_output(stdout: str) -> BackupSummary:
    """The summary in the JSON lines that ``restic backup --json`` printed."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary":
            return BackupSummary(
                snapshot_id=str(message.get("snapshot_id", "")),
                files_new=int(message.get("files_new", 0)),
                files_changed=int(message.get("files_changed", 0)),
                files_unmodified=int(message.get("files_unmodified", 0)),
                data_added=int(message.get("data_added", 0)),
                data_blobs=int(message.get("data_blobs", 0)),
                tree_blobs=int(message.get("tree_blobs", 0)),
                total_bytes_processed=int(message.get("total_bytes_processed", 0)),
                duration_seconds=float(message.get("total_duration", 0.0)),
            )
    raise OffsiteError("restic backup printed no summary; see its output above")


class FailureKind(Enum):
    """Why restic failed, as far as its messages tell."""

    WRONG_PASSWORD = "wrong-password"  # noqa: S105 (a failure kind, not a password)
    NO_REPOSITORY = "no-repository"
    UNREACHABLE = "unreachable"
    LOCKED = "locked"
    OTHER = "other"


_UNREACHABLE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
    "connection reset",
    "timeout",
    "tls:",
    "ssh command exited",
    "unable to start the sftp session",
)


def classify_failure(stderr: str) -> FailureKind:
    """Tell from restic's error output what went wrong."""
    text = stderr.lower()
    if "wrong password" in text:
        return FailureKind.WRONG_PASSWORD
    if "repository is already locked" in text or "unable to create lock" in text:
        return FailureKind.LOCKED
    if any(marker in text for marker in _UNREACHABLE):
        return FailureKind.UNREACHABLE
    if "is there a repository at the following location" in text or "config: no such" in text:
        return FailureKind.NO_REPOSITORY
    return FailureKind.OTHER


def failure_advice(kind: FailureKind, repository: str) -> str:
    """What went wrong and what to do, in a sentence for the job's log."""
    if kind is FailureKind.WRONG_PASSWORD:
        return (
            f"restic cannot open the repository {repository}: wrong password. Check the "
            "password key of the Secret named in backup.restic.passwordSecret; nothing was written"
        )
    if kind is FailureKind.UNREACHABLE:
        return (
            f"the repository {repository} cannot be reached. Check that the backup server in the "
            "other room is up and that the job's network policy lets it through; nothing was "
            "written, the next run retries"
        )
    if kind is FailureKind.NO_REPOSITORY:
        return (
            f"there is no restic repository at {repository}. Check backup.restic.repository, or "
            "set backup.restic.initialize: true to create it on the first run"
        )
    if kind is FailureKind.LOCKED:
        return (
            f"the repository {repository} is locked by another restic process. If no other "
            "backup or restore runs, remove the stale lock with `restic unlock`"
        )
    return f"restic failed on the repository {repository}; its own message is above"


def check_due(last_check: datetime | None, now: datetime, every: timedelta) -> bool:
    """Whether the periodic ``restic check`` runs now (never run, or ``every`` has passed)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if every <= timedelta(0):
        return False
    return last_check is None or now - last_check >= every


@dataclass(frozen=True)
class ResticSnapshot:
    """One snapshot as ``restic snapshots --json`` lists it."""

    id: str
    time: datetime
    paths: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def student(self) -> str | None:
        for tag in self.tags:
            if tag.startswith(STUDENT_TAG_PREFIX):
                return tag[len(STUDENT_TAG_PREFIX) :]
        return None


def _restic_time(text: str) -> datetime:
    # restic prints nanoseconds; Python keeps microseconds.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise OffsiteError(f"restic printed a time LabHub cannot read: {text!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    return datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")


def parse_snapshots(stdout: str) -> list[ResticSnapshot]:
    """The snapshots in the output of ``restic snapshots --json``, oldest first."""
    try:
        items = json.loads(stdout or "[]")
    except json.JSONDecodeError as exc:
        raise OffsiteError(f"restic snapshots printed no JSON list ({exc})") from exc
    snapshots = [
        ResticSnapshot(
            id=str(item["id"]),
            time=_restic_time(str(item["time"])),
            paths=tuple(item.get("paths") or ()),
            tags=tuple(item.get("tags") or ()),
        )
        for item in items or []
    ]
    return sorted(snapshots, key=lambda s: s.time)


def parse_at(text: str, zone: tzinfo) -> datetime:
    """The time of ``--at``: ISO 8601 (``2026-01-20``, ``2026-01-20T18:00``), local to ``zone``
    unless it names its own offset."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise OffsiteError(
            f"--at {text!r} is not a time; write it as 2026-01-20 or 2026-01-20T18:00"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
        if len(text.strip()) == 10:  # a bare date means the end of that day
            parsed += timedelta(days=1) - timedelta(microseconds=1)
    return parsed


def pick_snapshot(
    snapshots: Iterable[ResticSnapshot], student: str, at: datetime | None
) -> ResticSnapshot:
    """The newest home snapshot of ``student`` taken at or before ``at`` (or the newest)."""
    tag = student_tag(student)
    own = sorted((s for s in snapshots if tag in s.tags), key=lambda s: s.time)
    if not own:
        raise OffsiteError(
            f"the repository holds no backup of {student}'s home; check the name, or list the "
            "backups with `labhub-backup list`"
        )
    if at is None:
        return own[-1]
    earlier = [s for s in own if s.time <= at]
    if not earlier:
        raise OffsiteError(
            f"the oldest backup of {student}'s home is from {own[0].time:%Y-%m-%d %H:%M %Z}, after "
            f"{at:%Y-%m-%d %H:%M %Z}; pick a later --at"
        )
    return earlier[-1]


@dataclass(frozen=True)
class RunOutcome:
    """What one backup run did, for the metrics and the log."""

    started: datetime
    finished: datetime
    ok: bool
    bytes_added: int
    homes_backed_up: int
    homes_failed: int
    hubdb_ok: bool | None
    checked: bool
    last_success: datetime | None
    last_check: datetime | None

    @property
    def duration_seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


def metrics_text(outcome: RunOutcome) -> str:
    """The job's metrics in Prometheus' text exposition format."""

    def metric(name: str, help_text: str, value: float, kind: str = "gauge") -> list[str]:
        return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {float(value)!r}"]

    lines: list[str] = []
    lines += metric(
        "labhub_backup_last_run_timestamp_seconds",
        "When the last backup run ended (Unix time).",
        outcome.finished.timestamp(),
    )
    lines += metric(
        "labhub_backup_last_run_success",
        "1 when the last backup run backed up every home and the hub database, else 0.",
        1 if outcome.ok else 0,
    )
    if outcome.last_success is not None:
        lines += metric(
            "labhub_backup_last_success_timestamp_seconds",
            "When the last fully successful backup run ended (Unix time).",
            outcome.last_success.timestamp(),
        )
    if outcome.last_check is not None:
        lines += metric(
            "labhub_backup_last_check_timestamp_seconds",
            "When `restic check` last passed on the repository (Unix time).",
            outcome.last_check.timestamp(),
        )
    lines += metric(
        "labhub_backup_added_bytes",
        "Bytes the last backup run added to the repository (after deduplication).",
        outcome.bytes_added,
    )
    lines += metric(
        "labhub_backup_duration_seconds",
        "How long the last backup run took.",
        outcome.duration_seconds,
    )
    lines += metric(
        "labhub_backup_homes_failed",
        "Homes the last backup run could not back up.",
        outcome.homes_failed,
    )
    return "\n".join(lines) + "\n"


def read_metric(text: str, name: str) -> float | None:
    """The value of ``name`` in a metrics text this module wrote (None when absent)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            try:
                return float(parts[1])
            except ValueError:
                return None
    return None


def home_names(entries: Sequence[str], prefix: str) -> dict[str, str]:
    """Students by home directory name: ``claim-alice`` -> ``alice`` for prefix ``claim-``."""
    homes: dict[str, str] = {}
    for entry in sorted(entries):
        if entry.startswith(prefix) and len(entry) > len(prefix):
            student = entry[len(prefix) :]
            if _STUDENT.match(student):
                homes[entry] = student
    return homes
