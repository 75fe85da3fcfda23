"""The ldapauthenticator 2.0 contract, point by point, against slapd.

Refusals return None (JupyterHub then shows its own "Invalid username or password"); lockouts
raise HTTP 429 with the remaining wait and an unreachable directory 503; ``auth_state`` means
what it means upstream (``ldap_groups``: the allowed_groups entries the user is in); upstream's
configuration warnings are kept.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from ldap3.core.exceptions import LDAPSSLConfigurationError
from ldap_helpers import LAB, PEOPLE, compat_config
from traitlets.config import Config

from hub_ext.adapters.ldap.reference_lab import Slapd, TlsFiles, lab_password
from hub_ext.hub.auth.gate import LoginError
from hub_ext.hub.auth.ldap import LabLDAPAuthenticator


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


async def login(auth: LabLDAPAuthenticator, user: str, password: str | None) -> Any:
    # handler=None, as ldapauthenticator's own tests call it
    return await auth.get_authenticated_user(None, {"username": user, "password": password})


REFUSED = [
    ("wrong-password", "student01", "not-it", {}),
    ("unknown-user", "nosuchuser", "whatever", {}),
    ("invalid-username", "3stu/dent", "x", {}),
    ("blank-username", "", "x", {}),
    ("blank-password", "student01", "", {}),
    ("spaces-password", "student01", "   ", {}),
    ("no-password", "student01", None, {}),
    ("not-in-allowed-group", "lecturer1", lab_password("lecturer1"), {}),
    (
        "search-filter-miss",
        "student02",
        lab_password("student02"),
        {
            "search_filter": "(&({userattr}={username})(mail=nobody))",
            "user_search_base": PEOPLE,
            "user_attribute": "uid",
        },
    ),
]


@pytest.mark.parametrize(
    ("user", "password", "extra"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
async def test_refusals_return_none(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles, user: str, password: str | None, extra: dict
) -> None:
    auth = make(compat_config(slapd, ldap_tls, **extra))
    assert await login(auth, user, password) is None


async def test_allowed_users_and_allow_all_admit_outside_the_groups(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    auth = make(compat_config(slapd, ldap_tls, allowed_users={"lecturer1"}))
    assert (await login(auth, "lecturer1", lab_password("lecturer1")))["name"] == "lecturer1"
    assert await login(auth, "lecturer2", lab_password("lecturer2")) is None
    auth.allow_all = True
    model = await login(auth, "lecturer2", lab_password("lecturer2"))
    assert model["name"] == "lecturer2"
    assert model["auth_state"]["ldap_groups"] == []


async def test_auth_state_means_what_it_means_upstream(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    groups = [LAB.group_dn(g) for g in ("ml101-b", "cv201", "ml101-a")]
    config = compat_config(slapd, ldap_tls, allowed_groups=groups, auth_state_attributes=["mail"])
    model = await login(make(config), "student03", lab_password("student03"))
    state = model["auth_state"]
    # The matched allowed_groups, in their configured order and spelling.
    assert state["ldap_groups"] == [LAB.group_dn("cv201"), LAB.group_dn("ml101-a")]
    assert state["user_attributes"] == {"mail": ["student03@lab.example"]}
    # LabHub's own keys sit beside them.
    assert state["user_dn"] == LAB.user_dn("student03")
    assert LAB.group_dn("ml101-all") not in state["ldap_groups"]


async def test_lockout_is_429_with_the_remaining_wait(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles
) -> None:
    auth = make(compat_config(slapd, ldap_tls, failed_login_limit=2))
    for _ in range(2):
        assert await login(auth, "student04", "wrong") is None
    with pytest.raises(LoginError) as err:
        await login(auth, "student04", lab_password("student04"))
    assert err.value.status_code == 429
    m = re.fullmatch(r"too many attempts, try again in (\d+) s", err.value.message)
    assert m and 290 <= int(m.group(1)) <= 300


async def test_unreachable_directory_is_503(make: Any, ldap_tls: TlsFiles) -> None:
    config = Config()
    config.LabLDAPAuthenticator.server_urls = ["ldap://127.0.0.1:9"]
    config.LabLDAPAuthenticator.bind_dn_template = [f"uid={{username}},{PEOPLE}"]
    config.LabLDAPAuthenticator.connect_timeout = 0.5
    with pytest.raises(LoginError) as err:
        await login(make(config), "student05", "x")
    assert (err.value.status_code, err.value.message) == (
        503,
        "login service unavailable, try again in a minute",
    )


async def test_missing_ca_file_is_upstreams_error_and_a_503(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    config = compat_config(slapd, ldap_tls, tls_kwargs={"ca_certs_file": "/nonexistent.pem"})
    with pytest.raises(LDAPSSLConfigurationError) as err:
        await login(make(config), "student06", lab_password("student06"))
    assert isinstance(err.value, LoginError) and err.value.status_code == 503
    assert "names a readable PEM file" in caplog.text


async def test_blank_bind_dn_template_entry_is_dropped_with_upstreams_warning(
    make: Any, slapd: Slapd, ldap_tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    config = compat_config(slapd, ldap_tls, bind_dn_template=[f"uid={{username}},{PEOPLE}", ""])
    auth = make(config)
    assert auth.bind_dn_template == [f"uid={{username}},{PEOPLE}"]
    assert "Ignoring blank 'bind_dn_template' entry!" in caplog.text
    assert (await login(auth, "student07", lab_password("student07")))["name"] == "student07"
