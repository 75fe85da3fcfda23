"""LabLDAPAuthenticator.authenticate()/refresh_user() against slapd, configured the way
existing jupyterhub-ldapauthenticator 2.0 deployments are (``c.LDAPAuthenticator.*``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from ldap_helpers import GROUPS, LAB, PEOPLE, POSIX_GROUPS, compat_config
from traitlets.config import Config

from hub_ext.adapters.ldap.reference_lab import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    TlsFiles,
    lab_password,
)
from hub_ext.hub.auth.gate import LoginError
from hub_ext.hub.auth.ldap import CourseAccessError, LabLDAPAuthenticator, TlsStrategy


class Handler:
    """The bits of a tornado handler the authenticator reads."""

    def __init__(self, ip: str = "192.0.2.1") -> None:
        self.request = SimpleNamespace(remote_ip=ip)

    def get_body_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
        return default


@pytest_asyncio.fixture
async def make() -> AsyncIterator[Any]:
    made: list[LabLDAPAuthenticator] = []

    def factory(config: Config) -> LabLDAPAuthenticator:
        auth = LabLDAPAuthenticator(config=config)
        made.append(auth)
        return auth

    yield factory
    for auth in made:
        if auth._directory is not None:
            await auth._directory.close()


async def login(auth: LabLDAPAuthenticator, user: str, password: str | None = None) -> Any:
    pw = lab_password(user) if password is None else password
    return await auth.get_authenticated_user(Handler(), {"username": user, "password": pw})


async def test_upstream_readme_style_config(make: Any, slapd: Slapd, ldap_tls: TlsFiles) -> None:
    auth = make(compat_config(slapd, ldap_tls))
    assert auth.tls_strategy is TlsStrategy.before_bind
    model = await login(auth, "student01")
    assert model["name"] == "student01"
    # As in ldapauthenticator: the allowed_groups the user is in.
    assert model["auth_state"]["ldap_groups"] == [LAB.group_dn("ml101-a")]
    assert LAB.group_dn("ml101-a") in model["auth_state"]["ldap_group_dns"]
    assert model["auth_state"]["user_dn"] == LAB.user_dn("student01")
    assert "ml101-a" in model["groups"]
    # Not in an allowed group (lecturers are not in ml101-a/-b), wrong password: None.
    assert await login(auth, "lecturer1") is None
    assert await login(auth, "student01", "wrong") is None


async def test_template_list_lookup_dn_and_search_filter(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    auth = make(
        compat_config(
            slapd,
            ldap_tls,
            bind_dn_template=[
                f"uid={{username}},ou=nobody,{LAB.base_dn}",
                f"uid={{username}},{PEOPLE}",
            ],
            search_filter="(&({userattr}={username})(mail=*@lab.example))",
            user_search_base=PEOPLE,
            user_attribute="uid",
            attributes=["mail"],
            auth_state_attributes=["mail", "cn"],
        )
    )
    model = await login(auth, "student26")
    assert model["auth_state"]["user_attributes"]["mail"] == ["student26@lab.example"]
    assert model["auth_state"]["user_attributes"]["cn"] == ["Student26"]

    lookup = make(
        compat_config(
            slapd,
            ldap_tls,
            bind_dn_template=[],
            lookup_dn=True,
            lookup_dn_search_user=SERVICE_DN,
            lookup_dn_search_password=SERVICE_PASSWORD,
            user_search_base=PEOPLE,
            user_attribute="uid",
            lookup_dn_user_dn_attribute="cn",
            use_lookup_dn_username=True,
        )
    )
    model = await login(lookup, "student27")
    assert model["name"] == "student27"  # "Student27" (cn), lower-cased
    assert model["auth_state"]["user_dn"] == LAB.user_dn("student27")
    # Refresh finds the user by the attribute that gave the name (cn), not by uid.
    refreshed = await lookup.refresh_user(SimpleNamespace(name="student27", groups=[]))
    assert refreshed["auth_state"]["user_dn"] == LAB.user_dn("student27")

    excluded = make(
        compat_config(
            slapd,
            ldap_tls,
            search_filter="(&({userattr}={username})(mail=nobody))",
            user_search_base=PEOPLE,
            user_attribute="uid",
        )
    )
    assert await login(excluded, "student26") is None


@pytest.mark.parametrize("mode", ["ldaps", "use_ssl", "insecure", "no-ca"])
async def test_tls_modes(make: Any, slapd: Slapd, ldap_tls: TlsFiles, mode: str) -> None:
    if mode == "ldaps":
        config = compat_config(
            slapd, ldap_tls, tls_strategy="on_connect", server_port=slapd.tls_port
        )
    elif mode == "use_ssl":  # deprecated spelling of on_connect, still honoured
        config = compat_config(slapd, ldap_tls, use_ssl=True, server_port=slapd.tls_port)
    elif mode == "insecure":
        config = compat_config(slapd, ldap_tls, tls_strategy="insecure")
    else:
        config = compat_config(slapd, ldap_tls, tls_kwargs={})
        config.LabLDAPAuthenticator.connect_timeout = 1.0
    auth = make(config)
    if mode == "no-ca":  # the test CA is not trusted: verification is on by default
        with pytest.raises(LoginError) as err:
            await login(auth, "student02")
        assert err.value.status_code == 503
        assert err.value.message == "login service unavailable, try again in a minute"
        return
    assert (await login(auth, "student02"))["name"] == "student02"


async def test_group_kinds_mapping_and_admin(make: Any, slapd: Slapd, ldap_tls: TlsFiles) -> None:
    config = compat_config(slapd, ldap_tls, allowed_groups=["ml101-a", "ml101-b", "lecturers"])
    lab = config.LabLDAPAuthenticator
    lab.group_search_base = GROUPS
    lab.group_name_map = {LAB.group_dn("ml101-a"): "ML101 seminar A", "cv201": "vision"}
    lab.admin_groups = {LAB.group_dn("lecturers")}
    lab.group_nesting_depth = 1
    auth = make(config)
    model = await login(auth, "student05")
    # groupOfNames (mapped by DN), groupOfUniqueNames (mapped by name), nested ml101-all.
    assert model["groups"] == ["ML101 seminar A", "ml101-all", "vision"]
    assert model["admin"] is False
    assert (await login(auth, "lecturer2"))["admin"] is True

    posix = compat_config(slapd, ldap_tls, allowed_groups=["ml101-b"])
    posix.LabLDAPAuthenticator.group_search_base = POSIX_GROUPS
    posix.LabLDAPAuthenticator.group_search_filter = "(memberUid={uid})"
    posix.LabLDAPAuthenticator.use_member_of = False
    model = await login(make(posix), "student30")
    assert model["groups"] == ["ml101-b"]
    assert model["auth_state"]["ldap_groups"] == ["ml101-b"]
    assert model["auth_state"]["ldap_group_dns"] == [LAB.posix_group_dn("ml101-b")]


async def test_member_of_overlay_alone_finds_groups(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    assert slapd.memberof, "the memberof overlay module is missing from /usr/lib/ldap"
    config = compat_config(slapd, ldap_tls, allowed_groups=["ml101-a"])
    config.LabLDAPAuthenticator.group_search_filter = "(objectClass=nothing)"
    model = await login(make(config), "student06")
    assert model["auth_state"]["ldap_groups"] == ["ml101-a"]
    assert set(model["auth_state"]["ldap_group_dns"]) == {LAB.group_dn("ml101-a")}


INJECTION = [
    "*",
    "*)(uid=*))(|(uid=*",
    "admin)(|(userPassword=*)",
    "student01)(uid=*",
    "student0*",
    "student01,ou=people",
    'a\\b#c+d<e>f,g;h"i=j',
]


@pytest.mark.parametrize("name", INJECTION)
@pytest.mark.parametrize("lookup", [False, True])
async def test_escaping_with_a_permissive_pattern(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles, name: str, lookup: bool
) -> None:
    """Even when valid_username_regex lets anything through, filters and DNs are escaped."""
    extra: dict[str, Any] = {"valid_username_regex": r"^.+$"}
    if lookup:
        extra.update(
            bind_dn_template=[],
            lookup_dn=True,
            user_search_base=PEOPLE,
            user_attribute="uid",
            lookup_dn_search_user=SERVICE_DN,
            lookup_dn_search_password=SERVICE_PASSWORD,
            lookup_dn_user_dn_attribute="uid",
        )
    auth = make(compat_config(slapd, ldap_tls, **extra))
    for password in ("x", lab_password("student01"), "*"):
        assert await login(auth, name, password) is None
    # Nothing marked the server down: a real login still works at once.
    assert (await login(auth, "student01"))["name"] == "student01"


async def test_refresh_and_course_access(make: Any, slapd: Slapd, ldap_tls: TlsFiles) -> None:
    config = compat_config(slapd, ldap_tls, allowed_groups=["ml101-a", "ml101-b"])
    config.LabLDAPAuthenticator.lookup_dn_search_user = SERVICE_DN
    config.LabLDAPAuthenticator.lookup_dn_search_password = SERVICE_PASSWORD
    config.LabLDAPAuthenticator.group_search_base = GROUPS
    auth = make(config)
    assert auth.refresh_pre_spawn is True and auth.auth_refresh_age == 300
    user = SimpleNamespace(name="student40", groups=[])
    model = await auth.refresh_user(user)
    assert "ml101-b" in model["groups"]
    await auth.check_course_access(user, {"ml101-b"})
    with pytest.raises(CourseAccessError) as err:
        await auth.check_course_access(user, {"ml101-a"})
    assert err.value.missing == ("ml101-a",)
    assert await auth.refresh_user(SimpleNamespace(name="ghost", groups=[])) is False
