"""Logins through JupyterHub's real login handler (HTTP POST /hub/login with _xsrf)."""

from __future__ import annotations

import itertools
import re

import pytest
from ldap_hubproc import HubProcess, api, new_session, post_login

from hub_ext.adapters.ldap.reference_lab import lab_password

pytestmark = pytest.mark.slow

# As with ldapauthenticator 2.0, every refusal gets JupyterHub's own answer; the audit log
# says why.
INVALID = "Invalid username or password"
_ips = (f"10.20.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def assert_no_leak(body: str) -> None:
    """Nothing from the directory in the page (the typed name is echoed in value="...")."""
    body = re.sub(r'value="[^"]*"', "", body)
    for secret in ("dc=lab", "ou=people", "userPassword", "Traceback", "ldap3", "student01"):
        assert secret not in body, secret


async def test_student_logs_in_with_groups(lab_hub: HubProcess) -> None:
    async with new_session() as s:
        reply = await post_login(s, lab_hub, "student03", lab_password("student03"), "10.0.0.3")
        assert reply.ok, (reply.status, reply.message)
        status, user = await api(s, lab_hub, "GET", "/users/student03")
    assert status == 200
    # ml101-all is the nested group (ml101-a is a member of it).
    assert set(user["groups"]) >= {"ml101-a", "cv201", "ml101-all"}
    assert "ml101-b" not in user["groups"]
    assert user["admin"] is False
    log = lab_hub.log_text()
    assert re.search(r"login ok user='student03' from=10\.0\.0\.3", log)
    assert lab_password("student03") not in log


async def test_admin_group_grants_admin_and_case_is_normalised(lab_hub: HubProcess) -> None:
    async with new_session() as s:
        reply = await post_login(s, lab_hub, "LabAdmin", lab_password("labadmin"), next(_ips))
        assert reply.ok, reply.message
        status, user = await api(s, lab_hub, "GET", "/users/labadmin")
    assert status == 200 and user["admin"] is True
    assert "hub-admins" in user["groups"]


async def test_unknown_user_and_wrong_password_get_the_same_answer(lab_hub: HubProcess) -> None:
    async with new_session() as s:
        wrong = await post_login(s, lab_hub, "student04", "not-the-password", next(_ips))
        unknown = await post_login(s, lab_hub, "nosuchuser", "whatever", next(_ips))
    assert (wrong.status, wrong.message) == (403, INVALID)
    assert (unknown.status, unknown.message) == (403, INVALID)
    assert_no_leak(wrong.body)
    assert_no_leak(unknown.body)
    log = lab_hub.log_text()
    assert "login failed user='student04'" in log and "not-the-password" not in log


async def test_throttle_locks_the_name_not_the_address(lab_hub: HubProcess) -> None:
    async with new_session() as s:
        for _ in range(5):
            r = await post_login(s, lab_hub, "student05", "bad", "10.1.0.5")
            assert r.message == INVALID
        # Even the right password is refused now, from another address too.
        locked = await post_login(s, lab_hub, "student05", lab_password("student05"), "10.1.0.6")
        assert locked.status == 429
        m = re.fullmatch(r"too many attempts, try again in (\d+) s", locked.message)
        assert m and 250 <= int(m.group(1)) <= 300, locked.message
        # Five different names mistyped from one address do not lock it.
        for i in range(5):
            await post_login(s, lab_hub, f"student1{i}", f"bad{i}", "10.1.0.7")
        fine = await post_login(s, lab_hub, "student06", lab_password("student06"), "10.1.0.7")
        assert fine.ok
    async with new_session() as s:
        fine = await post_login(s, lab_hub, "student07", lab_password("student07"), "10.1.0.5")
        assert fine.ok
    log = lab_hub.log_text()
    assert "lockout username='student05'" in log
    assert "lockout address=" not in log


BAD_INPUT = [
    ("*", "x", "pattern"),
    ("*)(uid=*))(|(uid=*", "x", "pattern"),
    ("admin)(|(userPassword=*)", "x", "pattern"),
    ("student01\x00", "student01-Pa55word", "surrounding_space"),  # tornado turns NUL into a space
    ("stu\x00dent01", "student01-Pa55word", "pattern"),
    (" student01", "student01-Pa55word", "surrounding_space"),
    ("student01 ", "student01-Pa55word", "surrounding_space"),
    ("s" * 300, "x", "too_long"),
    ("stüdent01", "x", "pattern"),
    ("学生", "x", "pattern"),
    ("student01", "", "blank password"),
    ("student01", "    ", "blank password"),
] + [(f"stu{ch}dent01", "x", "pattern") for ch in '\\#+<>,;"=']


@pytest.mark.parametrize(("username", "password", "reason"), BAD_INPUT)
async def test_bad_input_is_refused_and_the_audit_log_says_why(
    lab_hub: HubProcess, username: str, password: str, reason: str
) -> None:
    address = next(_ips)
    async with new_session() as s:
        reply = await post_login(s, lab_hub, username, password, address)
    assert (reply.status, reply.message) == (403, INVALID)
    assert_no_leak(reply.body)
    why = reason if reason == "blank password" else f"invalid username ({reason})"
    lines = [ln for ln in lab_hub.log_text().splitlines() if f"from={address} " in ln]
    assert any(ln.endswith(f"reason={why}") for ln in lines), lines
