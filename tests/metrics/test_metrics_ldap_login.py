"""LDAP login metrics: real logins against a private slapd change the counters and histogram."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from traitlets.config import Config

from hub_ext.adapters.ldap.reference_lab import (
    Slapd,
    TlsFiles,
    lab_password,
    reference_lab,
    slapd_available,
    write_tls_files,
)
from hub_ext.hub.auth.gate import LoginError
from hub_ext.hub.auth.ldap import LabLDAPAuthenticator

LAB = reference_lab()
PEOPLE = f"ou=people,{LAB.base_dn}"


class Handler:
    def __init__(self) -> None:
        self.request = SimpleNamespace(remote_ip="192.0.2.7")

    def get_body_argument(self, name: str, default: Any = None, strip: bool = True) -> Any:
        return default


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def failures(reason: str, server: str) -> float:
    return sample("labhub_ldap_login_failures_total", reason=reason, server=server)


def logins(outcome: str) -> float:
    return sample("labhub_ldap_login_duration_seconds_count", outcome=outcome)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where login_lock_file (a relative path) is written


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[Slapd]:
    if not slapd_available():
        pytest.fail("OpenLDAP's slapd is missing: install the Debian packages slapd and ldap-utils")
    server = Slapd(tmp_path_factory.mktemp("slapd"), tls, LAB)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def make(tls: TlsFiles) -> AsyncIterator[Any]:
    made: list[LabLDAPAuthenticator] = []

    def factory(urls: list[str]) -> LabLDAPAuthenticator:
        c = Config()
        c.LabLDAPAuthenticator.server_urls = urls
        c.LabLDAPAuthenticator.tls_strategy = "before_bind"
        c.LabLDAPAuthenticator.tls_kwargs = {"ca_certs_file": str(tls.ca_cert)}
        c.LabLDAPAuthenticator.bind_dn_template = [f"uid={{username}},{PEOPLE}"]
        c.LabLDAPAuthenticator.allowed_groups = [LAB.group_dn("ml101-a")]
        c.LabLDAPAuthenticator.connect_timeout = 0.5
        c.LabLDAPAuthenticator.receive_timeout = 0.5
        c.LabLDAPAuthenticator.failed_login_limit = 3
        auth = LabLDAPAuthenticator(config=c)
        made.append(auth)
        return auth

    yield factory
    for auth in made:
        if auth._directory is not None:
            await auth._directory.close()


async def login(auth: LabLDAPAuthenticator, user: str, password: str | None = None) -> Any:
    pw = lab_password(user) if password is None else password
    return await auth.get_authenticated_user(Handler(), {"username": user, "password": pw})


async def test_success_is_timed(make: Any, slapd: Slapd) -> None:
    auth = make([slapd.url])
    before = logins("success")
    before_sum = sample("labhub_ldap_login_duration_seconds_sum", outcome="success")
    assert (await login(auth, "student01"))["name"] == "student01"
    assert logins("success") == before + 1
    assert sample("labhub_ldap_login_duration_seconds_sum", outcome="success") > before_sum


async def test_failure_reasons_name_the_server(make: Any, slapd: Slapd) -> None:
    auth = make([slapd.url])
    bad, group = failures("bad-credentials", slapd.url), failures("not-in-group", slapd.url)
    invalid, failed = failures("invalid-username", "none"), logins("failure")
    assert await login(auth, "student02", "not-the-password") is None
    assert failures("bad-credentials", slapd.url) == bad + 1
    assert await login(auth, "student40") is None  # ml101-b, not allowed here
    assert failures("not-in-group", slapd.url) == group + 1
    assert await login(auth, "bad name!") is None
    assert failures("invalid-username", "none") == invalid + 1
    assert logins("failure") == failed + 3


async def test_lockout_counts_as_throttled(make: Any, slapd: Slapd) -> None:
    auth = make([slapd.url])
    throttled = failures("throttled", slapd.url)
    for _ in range(3):
        assert await login(auth, "student03", "wrong") is None
    with pytest.raises(LoginError) as err:
        await login(auth, "student03")
    assert err.value.status_code == 429
    assert failures("throttled", slapd.url) == throttled + 1


@pytest.fixture
def hung() -> Iterator[str]:
    """A server that accepts TCP connections and never answers (a room that went dark)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_dead_server_counts_server_down(make: Any, slapd: Slapd, hung: str) -> None:
    dead = hung
    auth = make([dead, slapd.url])
    down, ok = failures("server-down", dead), logins("success")
    # Failover: the login succeeds through the second room, the dead server is counted.
    assert (await login(auth, "student04"))["name"] == "student04"
    assert failures("server-down", dead) == down + 1
    assert logins("success") == ok + 1
    # Every server dead: the login fails with 503 and counts against each server.
    only_dead = make([dead])
    down, failed = failures("server-down", dead), logins("failure")
    with pytest.raises(LoginError) as err:
        await login(only_dead, "student05")
    assert err.value.status_code == 503
    assert failures("server-down", dead) == down + 1
    assert logins("failure") == failed + 1
