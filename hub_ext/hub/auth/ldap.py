"""LabLDAPAuthenticator: campus LDAP login with failover, groups, throttling and refresh.

A drop-in for jupyterhub-ldapauthenticator 2.0 (same trait names and meaning), plus several
servers in failover order, hard timeouts, LDAP groups mapped to JupyterHub groups,
``admin_groups``, failed-login throttling and group re-checks before every spawn
(:mod:`hub_ext.hub.auth.ldap_refresh`, where spawners' ``check_course_access`` lives).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from typing import Any

from jupyterhub.auth import Authenticator
from ldap3.core.exceptions import LDAPSSLConfigurationError
from traitlets import Bool, Int, List, Unicode, Union, UseEnum, default, observe
from traitlets import validate as validate_trait

from hub_ext.adapters.ldap.directory import (
    ConnectionSettings,
    DirectoryLayout,
    DirectoryUser,
    LdapDirectory,
    LdapUnavailableError,
)
from hub_ext.core.login.identity import (
    DirectoryGroup,
    GroupMapping,
    InvalidUsernameError,
    UsernamePolicy,
    first_rdn_value,
    looks_like_dn,
    matching_specs,
    normalise_username,
    password_is_blank,
)
from hub_ext.core.login.throttle import ThrottlePolicy
from hub_ext.hub.auth.gate import (
    UNAVAILABLE,
    LockFile,
    LoginError,
    LoginGate,
    ProxyTrust,
    failure_reason,
    record_login,
    request_address,
    safe_name,
)
from hub_ext.hub.auth.ldap_refresh import CourseAccessError, GroupRefresh
from hub_ext.hub.auth.ldap_traits import LDAPAuthenticator


class TlsStrategy(enum.Enum):
    """How the connection is encrypted (values as in ldapauthenticator 2.0)."""

    before_bind = 1  # StartTLS on ldap:// before any bind
    on_connect = 2  # TLS from the first byte (ldaps://)
    insecure = 3  # no TLS (never for real passwords)


class LdapConfigurationError(LoginError, LDAPSSLConfigurationError):
    """The LDAP settings cannot work (a missing CA file): HTTP 503 on the login page, and the
    same ldap3 error that ldapauthenticator raises."""


class LabLDAPAuthenticator(GroupRefresh, LDAPAuthenticator):
    """Log in against campus LDAP servers; see docs/reference/authenticators.md."""

    server_address = Unicode(
        config=True,
        help="""Address (host name or IP) of the LDAP server, used when server_urls is empty.""",
    )
    server_port = Int(
        config=True,
        help="""Port of the LDAP server at server_address: 636 by default with
        tls_strategy "on_connect", 389 otherwise.""",
    )

    @default("server_port")
    def _server_port_default(self) -> int:
        return 636 if self.tls_strategy == TlsStrategy.on_connect else 389

    tls_strategy = UseEnum(
        TlsStrategy,
        default_value=TlsStrategy.before_bind,
        config=True,
        help="""How connections are encrypted: "before_bind" (StartTLS on ldap:// URLs, the
        default), "on_connect" (LDAPS) or "insecure" (no TLS; never use it with real passwords).
        With server_urls, ldaps:// URLs always use TLS on connect and ldap:// URLs use StartTLS
        unless this is "insecure".""",
    )
    use_ssl = Bool(
        None,
        allow_none=True,
        config=True,
        help="""Deprecated: use_ssl=True means tls_strategy="on_connect"; False has no effect.""",
    )

    @observe("use_ssl")
    def _use_ssl_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.tls_strategy = TlsStrategy.on_connect
        self.log.warning('use_ssl is deprecated: configure tls_strategy="on_connect" instead.')

    bind_dn_template = Union(
        [List(), Unicode()],
        config=True,
        help="""One DN template or a list of them, tried in order to bind as the user;
        {username} is replaced by the escaped login name, e.g.
        "uid={username},ou=people,dc=uni,dc=example". Leave empty and set lookup_dn=True when
        the DN cannot be built from the login name.""",
    )

    @validate_trait("bind_dn_template")
    def _validate_bind_dn_template(self, proposal: dict[str, Any]) -> list[str]:
        value = proposal["value"]
        items = [value] if isinstance(value, str) else list(value)
        if "" in items:
            self.log.warning("Ignoring blank 'bind_dn_template' entry!")
        return [t for t in items if t]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._directory: LdapDirectory | None = None
        self._gate: LoginGate | None = None
        self._proxies: ProxyTrust | None = None
        self._fresh: dict[str, tuple[float, tuple[str, ...]]] = {}

    # -- derived settings ----------------------------------------------------------------------

    def effective_server_urls(self) -> tuple[str, ...]:
        """server_urls, or one URL built from server_address/server_port/tls_strategy."""
        if self.server_urls:
            return tuple(self.server_urls)
        if not self.server_address:
            return ()
        scheme = "ldaps" if self.tls_strategy == TlsStrategy.on_connect else "ldap"
        return (f"{scheme}://{self.server_address}:{self.server_port}",)

    def group_mapping(self) -> GroupMapping:
        return GroupMapping.from_mapping(self.group_name_map)

    def _group_dns(self) -> tuple[str, ...]:
        specs: list[str] = list(self.allowed_groups or []) + list(self.admin_groups)
        specs += list(self.group_name_map)
        return tuple(dict.fromkeys(s for s in specs if looks_like_dn(s)))

    @property
    def directory(self) -> LdapDirectory:
        if self._directory is None:
            if not self.lookup_dn and not self.bind_dn_template:
                raise ValueError(
                    "LabLDAPAuthenticator needs bind_dn_template or lookup_dn=True "
                    "(with user_search_base and user_attribute)"
                )
            settings = ConnectionSettings(
                server_urls=self.effective_server_urls(),
                start_tls=self.tls_strategy != TlsStrategy.insecure,
                tls_ca_file=self.tls_ca_file or None,
                tls_kwargs=dict(self.tls_kwargs),
                connect_timeout=self.connect_timeout,
                receive_timeout=self.receive_timeout,
                skip_seconds=self.server_skip_seconds,
                service_dn=self.lookup_dn_search_user or None,
                service_password=self.lookup_dn_search_password or None,
            )
            layout = DirectoryLayout(
                bind_dn_templates=tuple(self.bind_dn_template),
                lookup_dn=self.lookup_dn,
                user_search_base=self.user_search_base,
                user_attribute=self.user_attribute,
                lookup_dn_search_filter=self.lookup_dn_search_filter,
                lookup_dn_user_dn_attribute=self.lookup_dn_user_dn_attribute,
                search_filter=self.search_filter,
                search_attributes=tuple(self.attributes),
                auth_state_attributes=tuple(self.auth_state_attributes),
                group_search_base=self.group_search_base or None,
                group_search_filter=self.group_search_filter,
                group_name_attribute=self.group_name_attribute,
                group_dns=self._group_dns(),
                use_member_of=self.use_member_of,
                group_nesting_depth=self.group_nesting_depth,
                refresh_attribute=(
                    self.lookup_dn_user_dn_attribute if self.use_lookup_dn_username else None
                ),
            )
            try:
                self._directory = LdapDirectory(settings, layout, self.log.getChild("ldap"))
            except LDAPSSLConfigurationError as e:
                self.log.error(
                    "LDAP TLS settings cannot work (%s): check that tls_ca_file (or "
                    "tls_kwargs['ca_certs_file']) names a readable PEM file",
                    e,
                )
                raise LdapConfigurationError(503, UNAVAILABLE) from e
        return self._directory

    @property
    def audit(self) -> logging.Logger:
        """Audit lines (logins, lockouts, refreshes) go to the hub's log, never a password."""
        return self.log.getChild("audit")

    @property
    def gate(self) -> LoginGate:
        if self._gate is None:
            window = float(self.failed_login_window)
            store = LockFile(self.login_lock_file, self.audit) if self.login_lock_file else None
            self._gate = LoginGate(
                ThrottlePolicy(
                    username_limit=self.failed_login_limit,
                    address_limit=self.failed_login_address_limit,
                    spray_limit=self.failed_login_spray_limit,
                    window_seconds=window,
                    lock_seconds=window,
                ),
                self.audit,
                store=store,
            )
        return self._gate

    @property
    def proxies(self) -> ProxyTrust:
        if self._proxies is None:
            self._proxies = ProxyTrust(self.trusted_proxies, self.log)
        return self._proxies

    async def client_address(self, handler: Any) -> str:
        """The login request's client address (see trusted_proxies). The request's
        ``remote_ip`` is set to it, so that JupyterHub's own log line shows the same."""
        address = request_address(handler, await self.proxies.refresh())
        request = getattr(handler, "request", None)
        if request is not None and address != "unknown":
            with contextlib.suppress(AttributeError):
                request.remote_ip = address
        return address

    # -- login ----------------------------------------------------------------------------------

    def _raw_username(self, handler: Any, data: dict[str, Any]) -> str:
        """The name as typed: JupyterHub strips the form field, surrounding spaces are refused."""
        name = str(data.get("username") or "")
        try:
            raw = handler.get_body_argument("username", default=None, strip=False)
        except Exception:
            raw = None
        if isinstance(raw, str) and raw.strip() == name:
            return raw
        return name

    def _down_marks(self) -> dict[str, float]:
        """When each server was last marked down (to see which failed during one attempt)."""
        if self._directory is None:
            return {}
        return dict(self._directory.health._down_until)

    def _answering_server(self) -> str:
        """The server the next request goes to (the one that answered the last one)."""
        if self._directory is None:
            return "none"
        order = self._directory.health.order()
        return order[0].url if order else "none"

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> dict[str, Any] | None:
        """Log in against the directory and record ``labhub_ldap_login_*`` metrics.

        As in ldapauthenticator 2.0, None refuses the login (wrong password, unknown user,
        invalid or blank name, blank password, not allowed, search_filter miss) and JupyterHub
        shows its own message; lockouts raise HTTP 429 and an unreachable directory 503."""
        started = time.monotonic()
        before = self._down_marks()
        note: list[str] = [""]
        try:
            model = await self._check_login(handler, data, note)
        except BaseException as e:
            down = self._newly_down(before)
            answered = "none" if note[0] == "invalid-username" else self._answering_server()
            record_login(time.monotonic() - started, failure_reason(e, note[0]), answered, down)
            raise
        if model is None:
            answered = "none" if note[0] == "invalid-username" else self._answering_server()
            reason = note[0] or "bad-credentials"
            down = self._newly_down(before)
            record_login(time.monotonic() - started, reason, answered, down)
            return None
        record_login(time.monotonic() - started, None, "", self._newly_down(before))
        return model

    def _newly_down(self, before: dict[str, float]) -> list[str]:
        after = self._down_marks()
        return [url for url, until in after.items() if until != before.get(url)]

    async def _check_login(
        self, handler: Any, data: dict[str, Any], note: list[str]
    ) -> dict[str, Any] | None:
        raw = self._raw_username(handler, data)
        password = data.get("password")
        address = await self.client_address(handler)
        gate = self.gate
        gate.before(raw, address)
        policy = UsernamePolicy(self.valid_username_regex, self.max_username_length)
        try:
            username = normalise_username(raw, policy)
        except InvalidUsernameError as e:
            note[0] = "invalid-username"
            gate.refused(raw, address, f"invalid username ({e.problem.value})")
            return None
        if password_is_blank(password):
            note[0] = "bad-credentials"
            gate.refused(username, address, "blank password")
            return None
        gate.before(username, address)
        try:
            result = await self.directory.authenticate(username, str(password))
        except LdapUnavailableError as e:
            self.audit.error(
                "login unavailable user=%s from=%s: %s", safe_name(username), address, e
            )
            raise LoginError(503, UNAVAILABLE) from None
        if result.user is None:
            note[0] = "bad-credentials"
            if result.password_ok:
                gate.refused(username, address, result.reason)
            else:
                gate.failed(username, address, result.reason, str(password))
            return None
        user = result.user
        login_name = self.normalize_username(
            user.username if self.use_lookup_dn_username else username
        )
        model = self._auth_model(login_name, user)
        if not self.allow_all and not await self._allowed(login_name, model):
            note[0] = "not-in-group"
            gate.refused(username, address, "not in allowed_groups or allowed_users")
            return None
        self._remember(login_name, model["groups"])
        gate.succeeded(
            username, address, f"server={user.server} groups={','.join(model['groups'])}"
        )
        return model

    def _auth_model(self, name: str, user: DirectoryUser) -> dict[str, Any]:
        mapping = self.group_mapping()
        groups = list(mapping.hub_names(user.groups))
        model: dict[str, Any] = {
            "name": name,
            "groups": groups,
            "auth_state": {
                # As in ldapauthenticator: the allowed_groups entries the user is in.
                "ldap_groups": [
                    spec
                    for spec in self.allowed_groups or []
                    if matching_specs([spec], user.groups, mapping)
                ],
                "user_attributes": dict(user.attributes),
                # LabHub's additions.
                "user_dn": user.dn,
                "ldap_group_dns": [g.dn for g in user.groups],
            },
        }
        if self.admin_groups:
            in_admin = bool(matching_specs(self.admin_groups, user.groups, mapping))
            model["admin"] = bool(in_admin or name in self.admin_users)
        return model

    def _directory_groups(self, auth_model: dict[str, Any]) -> list[DirectoryGroup]:
        state = auth_model.get("auth_state") or {}
        groups = [DirectoryGroup(dn, _rdn_or(dn)) for dn in state.get("ldap_group_dns", [])]
        groups += [DirectoryGroup("", g) for g in auth_model.get("groups") or []]
        return groups

    async def _allowed(self, username: str, auth_model: dict[str, Any]) -> bool:
        if await _maybe_await(Authenticator.check_allowed(self, username, auth_model)):
            return True
        if self.allowed_groups:
            groups = self._directory_groups(auth_model)
            return bool(matching_specs(self.allowed_groups, groups, self.group_mapping()))
        return False

    async def check_allowed(self, username: str, authentication: Any = None) -> bool:
        return await self._allowed(username, authentication or {})


def _rdn_or(dn: str) -> str:
    try:
        return first_rdn_value(dn)
    except ValueError:
        return dn


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value


__all__ = ["CourseAccessError", "LabLDAPAuthenticator", "LoginError", "TlsStrategy"]
