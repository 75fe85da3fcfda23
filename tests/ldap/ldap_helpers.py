"""Shared pieces of the LDAP tests: the reference lab, configs, a hung server."""

from __future__ import annotations

import socket
import threading

import pytest
from traitlets.config import Config

from hub_ext.adapters.ldap.reference_lab import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    TlsFiles,
    reference_lab,
    slapd_available,
)

LAB = reference_lab()
PEOPLE = f"ou=people,{LAB.base_dn}"
GROUPS = f"ou=groups,{LAB.base_dn}"
POSIX_GROUPS = f"ou=posixgroups,{LAB.base_dn}"


def require_slapd() -> None:
    if not slapd_available():
        pytest.fail(
            "OpenLDAP's slapd is missing: install the Debian packages slapd and ldap-utils "
            "(make system-deps)"
        )


class HungServer:
    """Accepts TCP connections and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        for c in self.held:
            c.close()
        self.sock.close()


def compat_config(slapd: Slapd, tls: TlsFiles, **extra: object) -> Config:
    """An ldapauthenticator 2.0 style config (``c.LDAPAuthenticator.*``) for ``slapd``."""
    c = Config()
    c.LDAPAuthenticator.server_address = "127.0.0.1"
    c.LDAPAuthenticator.server_port = slapd.port
    c.LDAPAuthenticator.tls_strategy = "before_bind"
    c.LDAPAuthenticator.tls_kwargs = {"ca_certs_file": str(tls.ca_cert)}
    c.LDAPAuthenticator.bind_dn_template = [f"uid={{username}},{PEOPLE}"]
    c.LDAPAuthenticator.allowed_groups = [LAB.group_dn(g) for g in ("ml101-a", "ml101-b")]
    for key, value in extra.items():
        setattr(c.LDAPAuthenticator, key, value)
    return c


def hub_config_text(urls: list[str], tls: TlsFiles, **extra: object) -> str:
    """A hub config in ldapauthenticator style plus LabHub's additions."""
    lines = [
        "c.LDAPAuthenticator.server_address = '127.0.0.1'",
        "c.LDAPAuthenticator.tls_strategy = 'before_bind'",
        f"c.LDAPAuthenticator.tls_kwargs = {{'ca_certs_file': {str(tls.ca_cert)!r}}}",
        "c.LDAPAuthenticator.lookup_dn = True",
        "c.LDAPAuthenticator.lookup_dn_search_filter = '({login_attr}={login})'",
        f"c.LDAPAuthenticator.lookup_dn_search_user = {SERVICE_DN!r}",
        f"c.LDAPAuthenticator.lookup_dn_search_password = {SERVICE_PASSWORD!r}",
        f"c.LDAPAuthenticator.user_search_base = {PEOPLE!r}",
        "c.LDAPAuthenticator.user_attribute = 'uid'",
        "c.LDAPAuthenticator.lookup_dn_user_dn_attribute = 'uid'",
        "c.LDAPAuthenticator.allowed_groups = "
        + repr(
            [LAB.group_dn(g) for g in ("ml101-a", "ml101-b", "cv201", "lecturers", "hub-admins")]
        ),
        "c.LDAPAuthenticator.auth_state_attributes = ['mail']",
        f"c.LabLDAPAuthenticator.server_urls = {urls!r}",
        f"c.LabLDAPAuthenticator.group_search_base = {GROUPS!r}",
        "c.LabLDAPAuthenticator.admin_groups = {'hub-admins'}",
        "c.Authenticator.manage_groups = True",
    ]
    lines += [f"c.LabLDAPAuthenticator.{k} = {v!r}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"
