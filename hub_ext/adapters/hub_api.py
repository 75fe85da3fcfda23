"""A small JupyterHub REST API client for hub services (aiohttp).

Reads the active users' servers with their activity (paged ``/users?state=active``) and stops
servers. The token needs ``list:users``, ``read:users:activity``, ``read:servers`` and
``delete:servers``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from hub_ext.core.admission.model import EntryKey, UserName
from hub_ext.core.cull import ServerActivity

PAGINATION = "application/jupyterhub-pagination+json"


class HubApiError(RuntimeError):
    """The hub refused or failed a request; the message names the request and the status."""


@dataclass(frozen=True)
class HubApiSettings:
    url: str
    token: str
    page_size: int = 200
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubApiSettings:
        """From ``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_API_TOKEN`` (set for hub services)."""
        values = os.environ if env is None else env
        url, token = values.get("JUPYTERHUB_API_URL", ""), values.get("JUPYTERHUB_API_TOKEN", "")
        if not url or not token:
            raise HubApiError(
                "JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN must be set; "
                "run this as a JupyterHub service"
            )
        return cls(url.rstrip("/"), token)


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def activities_from_users(users: list[dict[str, Any]]) -> list[ServerActivity]:
    """Every server of the users (JupyterHub user models) as an activity record."""
    rows: list[ServerActivity] = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            rows.append(
                ServerActivity(
                    EntryKey(UserName(str(user["name"])), str(name)),
                    _time(server.get("last_activity")),
                    _time(server.get("started")),
                    bool(server.get("ready")),
                    server.get("pending") or None,
                )
            )
    return rows


class HubApi:
    """Use as ``async with HubApi(settings) as hub``."""

    def __init__(self, settings: HubApiSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HubApi:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"token {self.settings.token}"},
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HubApi is used outside 'async with'")
        return self._session

    async def active_servers(self) -> list[ServerActivity]:
        """The servers of all users with an active server, following the hub's pagination."""
        users: list[dict[str, Any]] = []
        offset = 0
        while True:
            params = {
                "state": "active",
                "offset": str(offset),
                "limit": str(self.settings.page_size),
            }
            url = f"{self.settings.url}/users"
            async with self.session.get(url, params=params, headers={"Accept": PAGINATION}) as r:
                if r.status != 200:
                    raise HubApiError(f"GET {url} answered HTTP {r.status}: {await r.text()}")
                body = await r.json()
            if isinstance(body, list):  # a hub without pagination support
                users.extend(body)
                break
            users.extend(body.get("items") or [])
            following = (body.get("_pagination") or {}).get("next")
            if not following:
                break
            offset = int(following.get("offset", offset + self.settings.page_size))
        return activities_from_users(users)

    async def stop_server(self, key: EntryKey) -> int:
        """Stop one server; the HTTP status (204 stopped, 202 stopping, 404 already gone)."""
        user = quote(key.user, safe="")
        if key.server_name:
            path = f"/users/{user}/servers/{quote(key.server_name, safe='')}"
        else:
            path = f"/users/{user}/server"
        url = self.settings.url + path
        async with self.session.delete(url) as resp:
            if resp.status not in (202, 204, 404):
                raise HubApiError(f"DELETE {url} answered HTTP {resp.status}: {await resp.text()}")
            return resp.status
