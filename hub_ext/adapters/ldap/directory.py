"""LDAP directory access for logins and group look-ups, with failover and hard timeouts.

Every ldap3 call runs in a worker thread (never on the event loop) and every socket has a
connect and a receive timeout, so a server that accepts TCP and never answers costs one worker
thread for at most ``connect_timeout + receive_timeout`` seconds and delays nobody else.

Servers are tried in the configured order (one per server room). A server that fails at the
network level is skipped for ``skip_seconds``; when every server is marked down, all of them are
tried again so that the service recovers on its own. ldap3's ``ServerPool`` keeps its
availability state per connection object and sleeps between pool cycles, so the failover order
and the skip memory live in :class:`ServerHealth`, shared by all worker threads.

Encrypted connections are kept for reuse (each use starts with a new bind) for up to
``POOL_IDLE_SECONDS``; a reused connection that the server has closed is replaced by a fresh one
without marking the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_exc
from ldap3.core.tls import Tls
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from hub_ext.adapters.ldap.entries import Entry, attr_values, entries_of, is_under
from hub_ext.adapters.ldap.servers import ServerHealth, ServerSpec, parse_server_url
from hub_ext.core.login.identity import DirectoryGroup, first_rdn_value, normalise_dn

log = logging.getLogger("labhub.ldap")
T = TypeVar("T")

RESULT_INVALID_CREDENTIALS = 49
#: Result codes that say "this server cannot serve you now" rather than "no".
SERVER_TROUBLE_CODES = frozenset({3, 51, 52, 53, 80})


#: Idle connections are reused for at most this many seconds (servers drop idle clients).
POOL_IDLE_SECONDS = 30.0


class LdapUnavailableError(Exception):
    """No configured LDAP server answered in time."""


class ServerTrouble(Exception):
    """One server failed at the network/TLS level or refused service (internal)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect."""

    server_urls: tuple[str, ...]
    start_tls: bool = True
    tls_ca_file: str | None = None
    tls_kwargs: Mapping[str, Any] = field(default_factory=dict)
    connect_timeout: float = 3.0
    receive_timeout: float = 5.0
    skip_seconds: float = 60.0
    service_dn: str | None = None
    service_password: str | None = None
    max_workers: int = 4
    """Worker threads for ldap3 calls. ldap3 encodes and decodes in Python while holding the
    GIL, so every extra busy thread delays the hub's event loop; four keep a 50-login burst as
    fast as eight did (the directory server is the limit) with half the loop lag."""


@dataclass(frozen=True)
class DirectoryLayout:
    """How users and groups are found (mirrors the authenticator's traits)."""

    bind_dn_templates: tuple[str, ...] = ()
    lookup_dn: bool = False
    user_search_base: str | None = None
    user_attribute: str | None = None
    lookup_dn_search_filter: str = "({login_attr}={login})"
    lookup_dn_user_dn_attribute: str | None = None
    search_filter: str = ""
    search_attributes: tuple[str, ...] = ()
    auth_state_attributes: tuple[str, ...] = ()
    group_search_base: str | None = None
    group_search_filter: str = "(|(member={userdn})(uniqueMember={userdn})(memberUid={uid}))"
    group_name_attribute: str = "cn"
    group_dns: tuple[str, ...] = ()
    use_member_of: bool = True
    group_nesting_depth: int = 0
    #: Attribute that holds the JupyterHub name when it differs from user_attribute
    #: (use_lookup_dn_username); service-account look-ups search by it.
    refresh_attribute: str | None = None


@dataclass(frozen=True)
class DirectoryUser:
    """A user found (and, for logins, authenticated) in the directory."""

    username: str
    dn: str
    groups: tuple[DirectoryGroup, ...]
    attributes: Mapping[str, list[Any]]
    server: str


@dataclass(frozen=True)
class LoginResult:
    """``user`` is None when the credentials were wrong or the user is not allowed by filter;
    ``password_ok`` tells the two apart (a search_filter miss guessed no password)."""

    user: DirectoryUser | None
    reason: str = ""
    password_ok: bool = False


_TROUBLE = (
    ServerTrouble,
    ldap_exc.LDAPCommunicationError,
    ldap_exc.LDAPStartTLSError,
    OSError,
)


class _Session:
    """One connection to one server, used by one worker thread."""

    def __init__(self, directory: LdapDirectory, spec: ServerSpec) -> None:
        self.dir = directory
        self.spec = spec
        self.complete = False
        settings = directory.settings
        server = ldap3.Server(
            spec.host,
            port=spec.port,
            use_ssl=spec.use_ssl,
            tls=directory.tls,
            get_info=ldap3.NONE,
            connect_timeout=settings.connect_timeout,
        )
        self.conn = ldap3.Connection(
            server,
            auto_bind=ldap3.AUTO_BIND_NONE,
            # ldap3 packs the receive timeout into SO_RCVTIMEO as whole seconds.
            receive_timeout=max(1, math.ceil(settings.receive_timeout)),
            raise_exceptions=False,
            read_only=True,
        )
        self.conn.open()
        # Without TCP_NODELAY, the small LDAP messages after a TLS handshake meet delayed ACKs
        # and every bind waits ~40 ms.
        with contextlib.suppress(OSError, AttributeError):
            self.conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not spec.use_ssl and settings.start_tls and not self.conn.start_tls():
            raise ServerTrouble(f"StartTLS refused by {spec.url}: {self.conn.result}")

    def bind(self, dn: str | None, password: str | None) -> bool:
        """Bind; False for wrong credentials, ServerTrouble for server problems."""
        self.conn.user = dn
        self.conn.password = password
        self.conn.authentication = ldap3.SIMPLE if dn else ldap3.ANONYMOUS
        if self.conn.bind():
            return True
        code = (self.conn.result or {}).get("result")
        if code in SERVER_TROUBLE_CODES or code is None:
            raise ServerTrouble(f"bind failed on {self.spec.url}: {self.conn.result}")
        return False

    def search(
        self, base: str, flt: str, attributes: Sequence[str], scope: str = ldap3.SUBTREE
    ) -> list[Entry]:
        """The entries found; ``complete`` tells whether the server returned all of them."""
        ok = self.conn.search(base, flt, search_scope=scope, attributes=list(attributes))
        code = (self.conn.result or {}).get("result")
        self.complete = code == 0
        if not ok and code in SERVER_TROUBLE_CODES:
            raise ServerTrouble(f"search failed on {self.spec.url}: {self.conn.result}")
        return entries_of(self.conn.response) if ok else []

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken socket may fail
            self.conn.unbind()


class LdapDirectory:
    """Asynchronous facade: ``authenticate`` and ``lookup`` run in worker threads."""

    def __init__(
        self,
        settings: ConnectionSettings,
        layout: DirectoryLayout,
        logger: logging.Logger | None = None,
    ) -> None:
        self.log = logger or log
        if not settings.server_urls:
            raise ValueError("no LDAP server configured: set server_urls or server_address")
        self.settings = settings
        self.layout = layout
        self.health = ServerHealth(
            [parse_server_url(u) for u in settings.server_urls], settings.skip_seconds
        )
        tls_args: dict[str, Any] = {"validate": ssl.CERT_REQUIRED}
        if settings.tls_ca_file:
            tls_args["ca_certs_file"] = settings.tls_ca_file
        tls_args.update(settings.tls_kwargs)
        self.tls = Tls(**tls_args)
        self._idle: dict[str, list[tuple[float, _Session]]] = {}
        self._pool_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_workers, thread_name_prefix="labhub-ldap"
        )

    # -- async API ---------------------------------------------------------------------------

    def _deadline(self) -> float:
        s = self.settings
        per_server = s.connect_timeout + 3 * s.receive_timeout
        return per_server * len(self.health.specs) + 1.0

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._deadline()):
                return await loop.run_in_executor(self._executor, fn)
        except TimeoutError as e:
            raise LdapUnavailableError("LDAP servers did not answer in time") from e

    async def authenticate(self, username: str, password: str) -> LoginResult:
        """Check a user's password (``username`` must already be validated)."""
        return await self._in_thread(lambda: self._failover(self._login, username, password))

    async def lookup(self, username: str) -> DirectoryUser | None:
        """Find a user and their groups with the service account (None: no such user)."""
        return await self._in_thread(lambda: self._failover(self._lookup, username, None))

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._pool_lock:
            sessions = [s for idle in self._idle.values() for _, s in idle]
            self._idle.clear()
        for session in sessions:
            session.close()

    # -- worker-thread code ------------------------------------------------------------------

    def _failover(
        self,
        fn: Callable[[_Session, str, str | None], T],
        username: str,
        password: str | None,
    ) -> T:
        problems: list[str] = []
        for spec in self.health.order():
            pooled = self._take_idle(spec)
            attempts = [pooled, None] if pooled is not None else [None]
            for session in attempts:
                started = time.monotonic()
                try:
                    if session is None:
                        session = _Session(self, spec)
                    result = fn(session, username, password)
                except _TROUBLE as e:
                    if session is not None:
                        session.close()
                    quick = time.monotonic() - started < self.settings.connect_timeout
                    if pooled is not None and session is pooled and quick:
                        continue  # the server closed an idle connection: try a fresh one
                    self._report_trouble(spec, e)
                    problems.append(f"{spec.url}: {type(e).__name__}")
                    break
                except BaseException:
                    if session is not None:
                        session.close()
                    raise
                self._give_back(session)
                self.health.mark_up(spec)
                return result
        raise LdapUnavailableError("no LDAP server answered: " + "; ".join(problems))

    def _take_idle(self, spec: ServerSpec) -> _Session | None:
        """An idle, already encrypted connection to ``spec`` (closing ones idle too long)."""
        now = time.monotonic()
        with self._pool_lock:
            idle = self._idle.setdefault(spec.url, [])
            while idle:
                since, session = idle.pop()
                if now - since < POOL_IDLE_SECONDS:
                    return session
                session.close()
        return None

    def _give_back(self, session: _Session) -> None:
        with self._pool_lock:
            idle = self._idle.setdefault(session.spec.url, [])
            if len(idle) < self.settings.max_workers:
                idle.append((time.monotonic(), session))
                return
        session.close()

    def _report_trouble(self, spec: ServerSpec, err: BaseException) -> None:
        if not self.health.is_skipped(spec):
            text = str(err)
            hint = ""
            if "certificate" in text.lower() or "handshake" in text.lower():
                hint = " (TLS problem: check tls_ca_file and the server certificate's names)"
            self.log.warning(
                "LDAP server %s failed (%s: %s)%s; skipping it for %gs",
                spec.url,
                type(err).__name__,
                text[:200],
                hint,
                self.settings.skip_seconds,
            )
        self.health.mark_down(spec)

    def _service_bind(self, s: _Session) -> None:
        st = self.settings
        if not s.bind(st.service_dn or None, st.service_password or None):
            raise ServerTrouble(
                f"the service account {st.service_dn or '(anonymous)'} was refused by "
                f"{s.spec.url}; check lookup_dn_search_user and lookup_dn_search_password"
            )

    def _resolve_dn(
        self,
        s: _Session,
        username: str,
        by_attribute: str | None = None,
        extra: Sequence[str] = (),
    ) -> tuple[str, Entry] | None:
        """(name, entry) of the one user entry matching ``username``; ``extra`` attributes are
        read with it."""
        lay = self.layout
        flt = lay.lookup_dn_search_filter.format(
            login_attr=by_attribute or lay.user_attribute, login=escape_filter_chars(username)
        )
        attr = lay.lookup_dn_user_dn_attribute or lay.user_attribute or "uid"
        entries = s.search(lay.user_search_base or "", flt, list(dict.fromkeys([attr, *extra])))
        if len(entries) != 1:
            self.log.info("user lookup for %r found %d entries", username, len(entries))
            return None
        values = attr_values(entries[0], attr)
        if len(values) != 1:
            self.log.error(
                "attribute %r of %s must have exactly one value", attr, entries[0].entry_dn
            )
            return None
        return str(values[0]), entries[0]

    def _login(self, s: _Session, username: str, password: str | None) -> LoginResult:
        lay = self.layout
        resolved = username
        candidates = [t.format(username=escape_rdn(username)) for t in lay.bind_dn_templates]
        if lay.lookup_dn:
            self._service_bind(s)
            found = self._resolve_dn(s, username)
            if found is None:
                return LoginResult(None, "no unique directory entry")
            resolved, dn = found[0], found[1].entry_dn
            if not candidates:
                candidates = [dn]
            else:
                candidates = [
                    t.format(username=escape_rdn(resolved)) for t in lay.bind_dn_templates
                ]
        user_dn = next((dn for dn in candidates if s.bind(dn, password)), None)
        if user_dn is None:
            return LoginResult(None, "bind refused")
        if lay.search_filter:
            flt = lay.search_filter.format(
                userattr=lay.user_attribute, username=escape_filter_chars(resolved)
            )
            hits = s.search(lay.user_search_base or "", flt, lay.search_attributes)
            if len(hits) != 1:
                return LoginResult(None, f"search_filter matched {len(hits)} entries", True)
        return LoginResult(self._describe(s, resolved, user_dn))

    def _lookup(self, s: _Session, username: str, _pw: str | None) -> DirectoryUser | None:
        """The user and groups as the service account sees them; the user's attributes
        (memberOf, auth_state_attributes) come with the search that finds the entry."""
        lay = self.layout
        self._service_bind(s)
        attrs = self._user_attributes()
        if lay.lookup_dn or not lay.bind_dn_templates:
            found = self._resolve_dn(s, username, lay.refresh_attribute, attrs)
            if found is None:
                return None
            resolved, entry = found
            return self._describe(s, resolved, entry.entry_dn, entry)
        for t in lay.bind_dn_templates:
            cand = t.format(username=escape_rdn(username))
            hits = s.search(cand, "(objectClass=*)", ["objectClass", *attrs], scope=ldap3.BASE)
            if hits:
                return self._describe(s, username, cand, hits[0])
        return None

    def _user_attributes(self) -> list[str]:
        """The user entry's attributes that :meth:`_describe` reads."""
        lay = self.layout
        attrs = list(lay.auth_state_attributes)
        if lay.use_member_of:
            attrs.append("memberOf")
        return attrs

    def _describe(
        self, s: _Session, username: str, dn: str, known: Entry | None = None
    ) -> DirectoryUser:
        """The user's attributes and groups; ``known`` is the user's entry when it was already
        read with :meth:`_user_attributes` by the same account."""
        lay = self.layout
        attrs = self._user_attributes()
        attributes: dict[str, list[Any]] = {}
        member_of: list[str] = []
        if attrs:
            if known is not None:
                entries = [known]
            else:
                entries = s.search(dn, "(objectClass=*)", attrs, scope=ldap3.BASE)
            if len(entries) == 1:
                for name in lay.auth_state_attributes:
                    attributes[name] = attr_values(entries[0], name)
                member_of = [str(v) for v in attr_values(entries[0], "memberOf")]
        groups = self._groups(s, username, dn, member_of)
        return DirectoryUser(username, dn, groups, attributes, s.spec.url)

    def _groups(
        self, s: _Session, username: str, dn: str, member_of: list[str]
    ) -> tuple[DirectoryGroup, ...]:
        lay = self.layout
        found: dict[str, DirectoryGroup] = {}

        def add(gdn: str, name: str | None) -> bool:
            key = normalise_dn(gdn)
            if key in found:
                return False
            try:
                found[key] = DirectoryGroup(gdn, name or first_rdn_value(gdn))
            except ValueError:
                return False
            return True

        flt = lay.group_search_filter.format(
            userdn=escape_filter_chars(dn), uid=escape_filter_chars(username)
        )
        name_attr = lay.group_name_attribute
        searched = ""  # group_search_base, once a search below it returned every match
        if lay.group_search_base:
            for e in s.search(lay.group_search_base, flt, [name_attr]):
                names = attr_values(e, name_attr)
                add(str(e.entry_dn), str(names[0]) if names else None)
            searched = lay.group_search_base if s.complete else ""
        for gdn in lay.group_dns:
            if normalise_dn(gdn) in found or (searched and is_under(gdn, searched)):
                continue  # found, or not a member: the search below its base answered
            for e in s.search(gdn, flt, [name_attr], scope=ldap3.BASE):
                names = attr_values(e, name_attr)
                add(str(e.entry_dn), str(names[0]) if names else None)
        for gdn in member_of:
            add(gdn, None)
        frontier = list(found.values())
        for _level in range(lay.group_nesting_depth):
            if not frontier or not lay.group_search_base:
                break
            terms = "".join(
                f"(member={escape_filter_chars(g.dn)})(uniqueMember={escape_filter_chars(g.dn)})"
                for g in frontier
            )
            new: list[DirectoryGroup] = []
            for e in s.search(lay.group_search_base, f"(|{terms})", [name_attr]):
                names = attr_values(e, name_attr)
                if add(str(e.entry_dn), str(names[0]) if names else None):
                    new.append(found[normalise_dn(str(e.entry_dn))])
            frontier = new
        return tuple(found.values())
