"""Group re-checks of LabLDAPAuthenticator: refresh_user and the course-access check.

Spawners call :meth:`GroupRefresh.check_course_access` before starting a course; it raises
:class:`CourseAccessError` (an HTTP 403 whose message names the missing group) when the
directory no longer lists the user in any of the course's groups.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from tornado import web

from hub_ext.adapters.ldap.directory import LdapUnavailableError
from hub_ext.core.login.identity import check_course_groups
from hub_ext.hub.auth.gate import safe_name


class CourseAccessError(web.HTTPError):
    """The user is not (any more) in a group that a course requires."""

    def __init__(self, message: str, missing: tuple[str, ...]) -> None:
        super().__init__(403, message.replace("%", "%%"))
        self.message = message
        self.missing = missing


#: How long a group look-up made by refresh_user is reused by check_course_access.
FRESH_SECONDS = 10.0


class GroupRefresh:
    """Mixed into LabLDAPAuthenticator (which provides the directory, the audit logger, the
    auth model and the allow check)."""

    _fresh: dict[str, tuple[float, tuple[str, ...]]]
    directory: Any
    audit: Any
    log: Any

    # -- refresh and course access --------------------------------------------------------------

    def _remember(self, name: str, groups: Iterable[str]) -> None:
        self._fresh[name] = (time.monotonic(), tuple(groups))

    async def refresh_user(self, user: Any, handler: Any = None) -> bool | dict[str, Any]:
        """Re-read the user's groups with the service account (every refresh_interval s
        and before each spawn). False when the user is gone or no longer allowed.

        Without lookup_dn_search_user there is no account to read groups with: the groups from
        the last login stay in force (True). True as well when the directory says what the hub
        already has (see :meth:`_hub_is_current`)."""
        refreshed = await self._refresh(user)
        if isinstance(refreshed, dict) and await self._hub_is_current(user, refreshed):
            return True
        return refreshed

    async def _hub_is_current(self, user: Any, model: dict[str, Any]) -> bool:
        """True when storing ``model`` would change nothing in the hub's database.

        JupyterHub stores a refreshed auth model with ``auth_to_user`` (admin flag, default
        roles, groups, auth_state) and commits; before every spawn that is a database round
        trip on the hub's event loop for a student whose groups did not change. This checks
        the same fields ``auth_to_user`` writes; anything it cannot check means False."""
        try:
            admin = bool(user.admin)
            groups = {g.name for g in user.groups}
            roles = {r.name for r in user.roles}
            stored = user.encrypted_auth_state
        except AttributeError:
            return False
        if "admin" in model and bool(model["admin"]) != admin:
            return False
        if "user" not in roles or ("admin" in roles) != admin:
            return False
        if self.manage_groups and groups != set(model["groups"]):
            return False
        if self.manage_roles and model.get("roles") is not None:
            return False
        if not self.enable_auth_state:
            return stored is None
        if self.reconcile_auth_state_hook is not None or stored is None:
            return False
        return bool(await user.get_auth_state() == model.get("auth_state"))

    async def _refresh(self, user: Any) -> bool | dict[str, Any]:
        """The user's auth model as the directory has it now (or False, or True: see
        :meth:`refresh_user`)."""
        if not self.lookup_dn_search_user:
            return True
        try:
            found = await self.directory.lookup(user.name)
        except LdapUnavailableError as e:
            self.log.warning("Keeping groups of %s: LDAP unavailable (%s)", user.name, e)
            return True
        if found is None:
            self._remember(user.name, ())
            self.audit.warning("refresh user=%s: no longer in the directory", safe_name(user.name))
            return False
        model = self._auth_model(user.name, found)
        if not self.allow_all and not await self._allowed(user.name, model):
            # Token-authenticated spawns may go on with stale auth (auth_refresh_strict is
            # False by default), so course checks must see the loss of every group right away.
            self._remember(user.name, ())
            self.audit.warning("refresh user=%s: no longer in allowed_groups", safe_name(user.name))
            return False
        self._remember(user.name, model["groups"])
        self.audit.info(
            "refresh user=%s groups=%s", safe_name(user.name), ",".join(model["groups"])
        )
        return model

    async def current_groups(self, user: Any) -> tuple[str, ...]:
        """The user's hub groups, at most FRESH_SECONDS old (else read from the directory)."""
        seen = self._fresh.get(user.name)
        if seen is not None and time.monotonic() - seen[0] < FRESH_SECONDS:
            return seen[1]
        refreshed = await self._refresh(user)
        if refreshed is False:
            return ()
        if isinstance(refreshed, dict):
            return tuple(refreshed["groups"])
        if seen is not None:  # no service account, or LDAP unavailable: last known groups
            return seen[1]
        return tuple(g.name for g in getattr(user, "groups", []))

    async def check_course_access(self, user: Any, required_groups: Iterable[str]) -> None:
        """Raise CourseAccessError unless the user is in one of ``required_groups``.

        Group names are JupyterHub group names (after group_name_map). An empty set allows
        everyone. Spawners call this before starting a course's server.
        """
        required = tuple(required_groups)
        if not required:
            return
        access = check_course_groups(user.name, required, await self.current_groups(user))
        if not access.allowed:
            self.audit.warning(
                "spawn refused user=%s missing=%s", safe_name(user.name), ",".join(access.missing)
            )
            raise CourseAccessError(access.message, access.missing)
