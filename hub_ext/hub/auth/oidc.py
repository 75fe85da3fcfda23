"""LabOIDCAuthenticator: campus single sign-on through an OpenID Connect bridge.

Built on oauthenticator's GenericOAuthenticator (for campuses that front Shibboleth/SAML with an
OIDC bridge). Group claim values (plain names or LDAP-style DNs, read with ``claim_groups_key``
or ``auth_state_groups_key``) are mapped to JupyterHub groups with ``group_name_map`` exactly like
LabLDAPAuthenticator does; ``allowed_groups`` and ``admin_groups`` then name JupyterHub groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from traitlets import Bool, Dict, default

from hub_ext.core.login.identity import (
    DirectoryGroup,
    GroupMapping,
    check_course_groups,
    first_rdn_value,
    looks_like_dn,
)
from hub_ext.hub.auth.ldap import CourseAccessError


def claim_to_group(value: str) -> DirectoryGroup:
    """A group claim value as a directory group (DN values keep their DN)."""
    if looks_like_dn(value):
        return DirectoryGroup(value, first_rdn_value(value))
    return DirectoryGroup("", value)


class LabOIDCAuthenticator(GenericOAuthenticator):
    """OIDC login with LabHub's group mapping and course-access check."""

    group_name_map = Dict(
        config=True,
        help="""Map from a group claim value (a name, or a DN as some bridges send) to the
        JupyterHub group name, e.g. {"cn=ml101-a,ou=groups,dc=uni,dc=example": "ml101-a"}.
        allowed_groups and admin_groups name groups after this mapping.""",
    )
    keep_unmapped_groups = Bool(
        True,
        config=True,
        help="""Keep group claim values that group_name_map does not list (a DN becomes its
        first RDN value, e.g. "ml101-b"); when False only mapped groups are kept.""",
    )

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    def group_mapping(self) -> GroupMapping:
        return GroupMapping.from_mapping(self.group_name_map, self.keep_unmapped_groups)

    async def get_user_groups(self, auth_state: dict[str, Any]) -> set[str]:
        """The claim's groups, mapped to JupyterHub group names."""
        raw = await super().get_user_groups(auth_state)
        groups = [claim_to_group(str(v)) for v in raw]
        return set(self.group_mapping().hub_names(groups))

    async def check_course_access(self, user: Any, required_groups: Iterable[str]) -> None:
        """Raise CourseAccessError unless the user holds one of ``required_groups``.

        Uses the groups from the last login or token refresh (set refresh_pre_spawn and
        enable_auth_state so that they are re-read from the provider before each spawn).
        """
        have = [g.name for g in getattr(user, "groups", [])]
        access = check_course_groups(user.name, tuple(required_groups), have)
        if not access.allowed:
            self.log.warning("spawn refused user=%r missing=%s", user.name, access.missing)
            raise CourseAccessError(access.message, access.missing)
