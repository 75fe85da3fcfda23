"""What a login or a group re-check asks the directory, and what a refresh hands to the hub.

Group DNs named in allowed_groups/admin_groups that lie below group_search_base are answered by
the one search below that base; only groups elsewhere (or after an incomplete search) cost a
search of their own. A re-check whose result the hub already has is answered with True, so that
JupyterHub stores nothing before a spawn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from ldap_helpers import GROUPS, LAB, PEOPLE
from traitlets.config import Config

from hub_ext.adapters.ldap import directory as ldap_adapter
from hub_ext.adapters.ldap.reference_lab import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    TlsFiles,
    lab_password,
)
from hub_ext.hub.auth.ldap import LabLDAPAuthenticator

ALLOWED = [LAB.group_dn(g) for g in ("ml101-a", "ml101-b", "cv201", "hub-admins")]


def config(slapd: Slapd, tls: TlsFiles, **traits: Any) -> Config:
    c = Config()
    c.LabLDAPAuthenticator.server_urls = [slapd.url]
    c.LabLDAPAuthenticator.tls_ca_file = str(tls.ca_cert)
    c.LabLDAPAuthenticator.lookup_dn = True
    c.LabLDAPAuthenticator.lookup_dn_search_user = SERVICE_DN
    c.LabLDAPAuthenticator.lookup_dn_search_password = SERVICE_PASSWORD
    c.LabLDAPAuthenticator.user_search_base = PEOPLE
    c.LabLDAPAuthenticator.user_attribute = "uid"
    c.LabLDAPAuthenticator.allowed_groups = ALLOWED
    c.LabLDAPAuthenticator.group_search_base = GROUPS
    c.LabLDAPAuthenticator.admin_groups = {"hub-admins"}
    c.Authenticator.manage_groups = True
    for name, value in traits.items():
        setattr(c.LabLDAPAuthenticator, name, value)
    return c


@pytest_asyncio.fixture
async def make() -> AsyncIterator[Any]:
    made: list[LabLDAPAuthenticator] = []

    def factory(c: Config) -> LabLDAPAuthenticator:
        made.append(LabLDAPAuthenticator(config=c))
        return made[-1]

    yield factory
    for auth in made:
        if auth._directory is not None:
            await auth._directory.close()


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """(base, scope) of every search the directory code makes."""
    seen: list[tuple[str, str]] = []
    original = ldap_adapter._Session.search

    def counting(self: Any, base: str, flt: str, attributes: Any, scope: str = "SUBTREE") -> Any:
        seen.append((base, scope))
        return original(self, base, flt, attributes, scope)

    monkeypatch.setattr(ldap_adapter._Session, "search", counting)
    yield seen


class Handler:
    request = SimpleNamespace(remote_ip="192.0.2.7")

    def get_body_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
        return default


def hub_user(model: dict[str, Any], **changes: Any) -> SimpleNamespace:
    """A hub user record as JupyterHub keeps it after storing ``model``."""
    fields: dict[str, Any] = {
        "name": model["name"],
        "admin": model.get("admin", False),
        "groups": [SimpleNamespace(name=g) for g in model["groups"]],
        "roles": [SimpleNamespace(name="user")],
        "encrypted_auth_state": None,
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


async def test_group_dns_below_the_search_base_need_no_searches_of_their_own(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles, searches: list[tuple[str, str]]
) -> None:
    auth = make(config(slapd, ldap_tls))
    model = await auth.get_authenticated_user(
        Handler(), {"username": "student03", "password": lab_password("student03")}
    )
    assert model["groups"] == ["cv201", "ml101-a"]
    # user look-up, member-of, one search below ou=groups; no base search per allowed group
    assert [scope for _, scope in searches] == ["SUBTREE", "BASE", "SUBTREE"]
    searches.clear()
    refreshed = await auth.refresh_user(SimpleNamespace(name="student03", groups=[]))
    assert refreshed["groups"] == ["cv201", "ml101-a"]
    assert refreshed["auth_state"] == model["auth_state"]
    # the service account reads memberOf with the look-up that finds the user
    assert [scope for _, scope in searches] == ["SUBTREE", "SUBTREE"]


async def test_groups_elsewhere_or_after_an_incomplete_search_are_still_read(
    make: Any,
    slapd: Slapd,
    ldap_tls: TlsFiles,
    searches: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posix = LAB.posix_group_dn("ml101-b")
    auth = make(config(slapd, ldap_tls, allowed_groups=[*ALLOWED, posix]))
    model = await auth.refresh_user(SimpleNamespace(name="student30", groups=[]))
    assert model["groups"] == ["ml101-b"]
    assert posix in model["auth_state"]["ldap_groups"]
    assert (posix, "BASE") in searches and (ALLOWED[0], "BASE") not in searches

    # a search below the base that did not return everything (size limit): ask each group
    original = ldap_adapter._Session.search

    def incomplete(self: Any, base: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, base, *args, **kwargs)
        if base == GROUPS:
            self.complete = False
        return found

    monkeypatch.setattr(ldap_adapter._Session, "search", incomplete)
    searches.clear()
    again = await auth.refresh_user(SimpleNamespace(name="student30", groups=[]))
    assert again == model
    assert (LAB.group_dn("hub-admins"), "BASE") in searches


async def test_refresh_says_up_to_date_when_the_hub_has_it_already(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    auth = make(config(slapd, ldap_tls))
    model = await auth.refresh_user(SimpleNamespace(name="student04", groups=[]))
    assert isinstance(model, dict) and model["groups"] == ["cv201", "ml101-a"]
    assert await auth.refresh_user(hub_user(model)) is True
    # the course check still sees the groups just read
    await auth.check_course_access(hub_user(model), {"ml101-a"})

    # anything the hub would have to store: the whole model again
    assert await auth.refresh_user(hub_user(model, groups=[])) == model
    assert await auth.refresh_user(hub_user(model, admin=True)) == model
    assert await auth.refresh_user(hub_user(model, roles=[])) == model
    assert await auth.refresh_user(hub_user(model, encrypted_auth_state=b"old")) == model
    assert await auth.refresh_user(SimpleNamespace(name="student04", groups=[])) == model

    admin = await auth.refresh_user(SimpleNamespace(name="labadmin", groups=[]))
    assert isinstance(admin, dict) and admin["admin"] is True
    roles = [SimpleNamespace(name="user"), SimpleNamespace(name="admin")]
    assert await auth.refresh_user(hub_user(admin, roles=roles)) is True
    assert await auth.refresh_user(hub_user(admin)) == admin  # the admin role is missing


async def test_refresh_with_auth_state_compares_the_stored_state(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    auth = make(config(slapd, ldap_tls))
    auth.enable_auth_state = True
    model = await auth.refresh_user(SimpleNamespace(name="student05", groups=[]))
    assert isinstance(model, dict)

    async def stored() -> dict[str, Any]:
        return dict(model["auth_state"])

    async def stale() -> dict[str, Any]:
        return {**model["auth_state"], "ldap_groups": []}

    same = hub_user(model, encrypted_auth_state=b"x", get_auth_state=stored)
    assert await auth.refresh_user(same) is True
    old = hub_user(model, encrypted_auth_state=b"x", get_auth_state=stale)
    assert await auth.refresh_user(old) == model
    auth.reconcile_auth_state_hook = lambda _auth, _model, state: state
    assert await auth.refresh_user(same) == model
