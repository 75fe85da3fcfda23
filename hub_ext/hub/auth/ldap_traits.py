"""Configuration traits of the LDAP authenticator.

The class is called ``LDAPAuthenticator`` on purpose: configuration written for
jupyterhub-ldapauthenticator as ``c.LDAPAuthenticator.<trait> = ...`` applies unchanged to
:class:`hub_ext.hub.auth.ldap.LabLDAPAuthenticator`, which subclasses it. Only the traits whose
meaning is LDAP-specific or LabHub-specific live here; behaviour lives in ``ldap.py``.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Bool, Dict, Float, Int, List, Set, Unicode, default, observe


class LDAPAuthenticator(Authenticator):
    """Traits shared with jupyterhub-ldapauthenticator 2.0 plus LabHub's additions."""

    server_urls = List(
        Unicode(),
        config=True,
        help="""LDAP servers in failover order, e.g. ["ldaps://ldap-a.uni.example:636",
        "ldaps://ldap-b.uni.example:636"] (one per server room). ldaps:// URLs use TLS from the
        first byte, ldap:// URLs use StartTLS unless tls_strategy is "insecure". When empty,
        one URL is built from server_address, server_port and tls_strategy.""",
    )
    connect_timeout = Float(
        3.0,
        config=True,
        help="""Seconds to wait for a TCP (and TLS) connection to one LDAP server before the
        next server is tried.""",
    )
    receive_timeout = Float(
        5.0,
        config=True,
        help="""Seconds to wait for one answer from an LDAP server (rounded up to whole
        seconds) before the server is treated as down and the next one is tried.""",
    )
    server_skip_seconds = Int(
        60,
        config=True,
        help="""Seconds a server that failed at the network or TLS level is skipped before it
        is tried again. When every server is marked down, all are tried anyway.""",
    )
    tls_ca_file = Unicode(
        "",
        config=True,
        help="""PEM file with the CA certificates that sign the LDAP servers' certificates.
        Server certificates are always verified (unless tls_kwargs sets "validate"); when this
        is empty the system's trusted CAs are used.""",
    )
    tls_kwargs = Dict(
        config=True,
        help="""Keyword arguments for ldap3's Tls object, e.g. {"ca_certs_file": "/ca.pem"}.
        LabHub sets validate=ssl.CERT_REQUIRED unless this dictionary overrides it.""",
    )
    lookup_dn = Bool(
        False,
        config=True,
        help="""Find the user's DN by searching user_search_base for user_attribute equal to
        the login name (with lookup_dn_search_user as the service account) instead of
        building it from bind_dn_template.""",
    )
    user_search_base = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Search base for users, e.g. "ou=people,dc=uni,dc=example"; used with
        lookup_dn, search_filter and refresh_user.""",
    )
    user_attribute = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Attribute that holds the login name, e.g. "uid" (OpenLDAP) or
        "sAMAccountName" (Active Directory).""",
    )
    lookup_dn_search_filter = Unicode(
        "({login_attr}={login})",
        config=True,
        help="""Filter used to look a user up; {login_attr} is user_attribute and {login} the
        escaped login name.""",
    )
    lookup_dn_search_user = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""DN of the service account used for user look-ups and for the group re-checks
        of refresh_user; anonymous when empty.""",
    )
    lookup_dn_search_password = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Password of lookup_dn_search_user. It is never logged.""",
    )
    lookup_dn_user_dn_attribute = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Attribute whose value is put into bind_dn_template (and becomes the JupyterHub
        name with use_lookup_dn_username) after a look-up, e.g. "uid" or "sAMAccountName".""",
    )
    use_lookup_dn_username = Bool(
        False,
        config=True,
        help="""Use the looked-up lookup_dn_user_dn_attribute value, not the typed login name,
        as the JupyterHub user name.""",
    )
    valid_username_regex = Unicode(
        r"^[a-z][.a-z0-9_-]*$",
        config=True,
        help="""Pattern that the login name must match after it is lower-cased; other names are
        refused with a message before any directory request.""",
    )
    max_username_length = Int(
        64,
        config=True,
        help="""Longest login name accepted; longer names are refused before any directory
        request.""",
    )
    search_filter = Unicode(
        "",
        config=True,
        help="""Extra filter a user must match (exactly one entry under user_search_base) to log
        in; {userattr} is user_attribute and {username} the escaped login name.""",
    )
    attributes = List(
        config=True,
        help="""Attributes requested by the search_filter search.""",
    )
    auth_state_attributes = List(
        config=True,
        help="""User attributes stored in auth_state["user_attributes"] (needs
        Authenticator.enable_auth_state to be kept).""",
    )
    allowed_groups = List(
        None,
        allow_none=True,
        config=True,
        help="""Groups whose members may log in: LDAP group DNs (as in ldapauthenticator) or
        JupyterHub group names after group_name_map. Empty or None: no group restriction, and
        the other allow settings (allow_all, allowed_users) decide.""",
    ).tag(allow_config=True)
    group_search_filter = Unicode(
        "(|(member={userdn})(uniqueMember={userdn})(memberUid={uid}))",
        config=True,
        help="""Filter that finds the user's groups; {userdn} is the user's escaped DN and {uid}
        the escaped login name. The default covers groupOfNames, groupOfUniqueNames and
        posixGroup. For Active Directory nested groups use
        "(member:1.2.840.113556.1.4.1941:={userdn})".""",
    )
    group_attributes = List(
        ["member", "uniqueMember", "memberUid"],
        config=True,
        help="""Accepted for ldapauthenticator compatibility; membership is decided by
        group_search_filter.""",
    )
    group_search_base = Unicode(
        "",
        config=True,
        help="""Subtree searched for the user's groups, e.g. "ou=groups,dc=uni,dc=example". When
        empty, only the group DNs named in allowed_groups, admin_groups and group_name_map are
        checked (as ldapauthenticator does) plus the user's memberOf values.""",
    )
    group_name_attribute = Unicode(
        "cn",
        config=True,
        help="""Attribute of a group entry that gives its name when group_name_map does not
        map it.""",
    )
    group_name_map = Dict(
        config=True,
        help="""Map from LDAP group DN or group name to JupyterHub group name, e.g.
        {"cn=ml101-a,ou=groups,dc=uni,dc=example": "ml101-a"}. Unmapped groups keep their
        group_name_attribute value.""",
    )
    group_nesting_depth = Int(
        0,
        config=True,
        help="""How many levels of nested groups (a group that is a member of another group
        under group_search_base) LabHub resolves itself; 0 relies on the server (memberOf or an
        in-chain filter).""",
    )
    use_member_of = Bool(
        True,
        config=True,
        help="""Also read the user's memberOf attribute (Active Directory, OpenLDAP memberof
        overlay) to find groups.""",
    )
    admin_groups = Set(
        config=True,
        help="""Members of these groups (DNs or JupyterHub group names) are JupyterHub admins;
        membership is re-checked on every refresh, so removal revokes admin.""",
    )
    refresh_interval = Int(
        300,
        config=True,
        help="""Seconds after which a user's groups are re-read with the service account
        (sets Authenticator.auth_refresh_age unless that is configured).""",
    )
    failed_login_limit = Int(
        5,
        config=True,
        help="""Failed logins of one login name within failed_login_window that lock that name
        (from every address, and no other name) for failed_login_window seconds; 0 disables
        the lock per name.""",
    )
    failed_login_address_limit = Int(
        100,
        config=True,
        help="""Different login names that failed from one client address within
        failed_login_window, and have not logged in from it since, that lock the address for
        failed_login_window seconds (password spraying with many passwords). Keep it above the
        number of students behind one address (a lab room's NAT): a student who logs in
        stops counting. 0 disables this lock.""",
    )
    failed_login_spray_limit = Int(
        10,
        config=True,
        help="""Different login names that failed from one client address with the same wrong
        password within failed_login_window that lock the address (password spraying). Only a
        one-byte keyed hash of each wrong password is kept, in memory, for this; students who
        mistype their own passwords do not look alike. 0 disables this lock.""",
    )
    failed_login_window = Int(
        300,
        config=True,
        help="""Seconds in which failed logins are counted, and how long a lock lasts.""",
    )
    login_lock_file = Unicode(
        "labhub-login-locks.json",
        config=True,
        help="""File (relative to the hub's working directory, where jupyterhub.sqlite lives
        by default) in which the login locks in force are kept, so that a hub restart does not
        lift them. It is rewritten whenever a lock is set. Empty keeps locks in memory only.""",
    )
    trusted_proxies = List(
        Unicode(),
        ["127.0.0.0/8", "::1/128"],
        config=True,
        help="""The proxies in front of the hub whose X-Forwarded-For entries are believed:
        IP addresses, networks (CIDR, such as the Ingress controller's pod network
        "10.42.0.0/16") or host names (resolved every 30 s, such as a headless Service of the
        proxy pods). The client address used by the login throttle and the audit log is the
        hop nearest to these proxies; X-Real-Ip and headers from any other peer are ignored.
        The default trusts only proxies on the hub's own host (loopback).""",
    )

    escape_userdn = Bool(
        False,
        config=True,
        help="""Accepted for ldapauthenticator compatibility; user names are always escaped.""",
    )

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self) -> int:
        return int(self.refresh_interval)

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        return True

    @observe("escape_userdn")
    def _escape_userdn_changed(self, change: dict[str, Any]) -> None:
        self.log.warning("escape_userdn has no effect: LabHub always escapes user names.")
