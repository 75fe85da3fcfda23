"""The lock file: locks in force are written whole and read back; a damaged file loses nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hub_ext.core.login.throttle import ThrottlePolicy
from hub_ext.hub.auth.gate import LockFile, LoginError, LoginGate

LOG = logging.getLogger("test.audit")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_lock_is_saved_and_kept_by_the_next_gate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = tmp_path / "locks.json"
    clock = Clock(1_000_000.0)
    gate = LoginGate(ThrottlePolicy(username_limit=2), LOG, clock, LockFile(path, LOG))
    for _ in range(2):
        gate.failed("student01", "192.0.2.1", "bind refused", "wrong")
    saved = json.loads(path.read_text())
    assert saved["locks"] == [
        {
            "kind": "username",
            "value": "student01",
            "until": 1_000_300.0,
            "reason": "2 failed logins within 300 s",
        }
    ]
    clock.now += 100
    again = LoginGate(ThrottlePolicy(username_limit=2), LOG, clock, LockFile(path, LOG))
    with pytest.raises(LoginError) as err:
        again.before("student01", "192.0.2.9")
    assert (err.value.status_code, err.value.message) == (
        429,
        "too many attempts, try again in 200 s",
    )
    again.before("student02", "192.0.2.1")  # nobody else
    assert "lockout username='student01' kept from before the restart" in caplog.text


def test_a_damaged_file_is_kept_aside_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locks.json"
    path.write_text("{not json")
    gate = LoginGate(ThrottlePolicy(), LOG, Clock(0.0), LockFile(path, LOG))
    gate.before("student01", "192.0.2.1")
    assert (tmp_path / "locks.json.unreadable").read_text() == "{not json"
    assert f"login lock file {path} is unreadable" in caplog.text


def test_an_unwritable_place_is_an_error_line_not_a_failed_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = LockFile(blocker / "locks.json", LOG)
    gate = LoginGate(ThrottlePolicy(username_limit=1), LOG, Clock(0.0), store)
    gate.failed("student01", "192.0.2.1", "bind refused", "wrong")
    assert "cannot write the login lock file" in caplog.text
    with pytest.raises(LoginError):
        gate.before("student01", "192.0.2.1")  # still locked in memory
