"""Group changes in LDAP take effect at the next refresh (before every spawn)."""

from __future__ import annotations

import asyncio

import pytest
from ldap_helpers import LAB
from ldap_hubproc import HubProcess, api, new_session, post_login

from hub_ext.adapters.ldap.reference_lab import Slapd, lab_password

pytestmark = pytest.mark.slow


def set_member(slapd: Slapd, group: str, uid: str, present: bool) -> None:
    op = "add" if present else "delete"
    slapd.ldap_modify(
        f"dn: {LAB.group_dn(group)}\nchangetype: modify\n{op}: member\nmember: {LAB.user_dn(uid)}\n"
    )


async def spawn(s, hub: HubProcess, user: str) -> tuple[int, dict]:
    status, data = await api(s, hub, "POST", f"/users/{user}/server")
    for _ in range(50):
        if status not in (202,):
            break
        await asyncio.sleep(0.1)
        status, data = await api(s, hub, "GET", f"/users/{user}")
        if data.get("servers", {}).get("", {}).get("ready"):
            return 201, data
    return status, data


async def test_removed_student_cannot_spawn_the_course(lab_hub: HubProcess, slapd: Slapd) -> None:
    async with new_session() as s:
        assert (await post_login(s, lab_hub, "student02", lab_password("student02"))).ok
        status, data = await spawn(s, lab_hub, "student02")
        assert status == 201, data
        status, _ = await api(s, lab_hub, "DELETE", "/users/student02/server")
        assert status in (202, 204)
        set_member(slapd, "ml101-a", "student02", present=False)
        try:
            status, data = await spawn(s, lab_hub, "student02")
            assert status == 403, data
            assert data["message"] == (
                "student02 is not a member of the group ml101-a, which this course requires; "
                "ask the course's lecturer to add you, then log in again"
            )
            _, user = await api(s, lab_hub, "GET", "/users/student02")
            assert "ml101-a" not in user["groups"] and "cv201" in user["groups"]
        finally:
            set_member(slapd, "ml101-a", "student02", present=True)
        # Added back: the next spawn works again.
        status, data = await spawn(s, lab_hub, "student02")
        assert status == 201, data
        await api(s, lab_hub, "DELETE", "/users/student02/server")
    assert "spawn refused user='student02' missing=ml101-a" in lab_hub.log_text()


async def test_student_removed_from_every_allowed_group_loses_access(
    lab_hub: HubProcess, slapd: Slapd
) -> None:
    async with new_session() as s:
        assert (await post_login(s, lab_hub, "student24", lab_password("student24"))).ok
        set_member(slapd, "ml101-a", "student24", present=False)
        try:
            status, data = await spawn(s, lab_hub, "student24")
            assert status == 403, data
            assert data["message"].startswith("student24 is not a member of the group ml101-a")
            async with new_session() as fresh:
                again = await post_login(fresh, lab_hub, "student24", lab_password("student24"))
            # JupyterHub's own answer, as with ldapauthenticator; the audit log says why.
            assert (again.status, again.message) == (403, "Invalid username or password")
            assert (
                "login failed user='student24' from=127.0.0.1 "
                "reason=not in allowed_groups or allowed_users"
            ) in lab_hub.log_text()
        finally:
            set_member(slapd, "ml101-a", "student24", present=True)
    assert "refresh user='student24': no longer in allowed_groups" in lab_hub.log_text()
