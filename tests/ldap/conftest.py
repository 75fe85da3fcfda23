"""Fixtures: private slapd servers with the reference lab, a hung server, real hubs.

Every slapd here is started from a generated ``slapd.conf`` under pytest's tmp directory, on
free loopback ports, and stopped by the fixture; the system's slapd is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap_helpers import LAB, HungServer, hub_config_text, require_slapd
from ldap_hubproc import HubProcess

from hub_ext.adapters.ldap.reference_lab import Slapd, TlsFiles, write_tls_files


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Authenticators made in the test process keep their lock file (login_lock_file, relative
    to the working directory) in the test's own directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def ldap_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("ldap-tls"))


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory, ldap_tls: TlsFiles) -> Iterator[Slapd]:
    """One slapd with the reference lab for the whole session (tests restore what they edit)."""
    require_slapd()
    server = Slapd(tmp_path_factory.mktemp("slapd"), ldap_tls, LAB)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slapd_pair(tmp_path: Path, ldap_tls: TlsFiles) -> Iterator[tuple[Slapd, Slapd]]:
    """Two independent servers (room A and room B) with the same lab."""
    require_slapd()
    a, b = Slapd(tmp_path / "room-a", ldap_tls, LAB), Slapd(tmp_path / "room-b", ldap_tls, LAB)
    a.start()
    try:
        b.start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.fixture
def hung_ldap() -> Iterator[HungServer]:
    server = HungServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def lab_hub(tmp_path_factory: pytest.TempPathFactory, slapd: Slapd, ldap_tls: TlsFiles):
    """A real JupyterHub logging in against the session slapd (StartTLS)."""
    hub = HubProcess(
        tmp_path_factory.mktemp("hub"),
        hub_config_text([slapd.url], ldap_tls, group_nesting_depth=1),
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
