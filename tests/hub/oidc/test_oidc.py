"""LabOIDCAuthenticator against a local OIDC provider (token + userinfo over real HTTP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from tornado.web import HTTPError

from hub_ext.hub.auth.ldap import CourseAccessError
from hub_ext.hub.auth.oidc import LabOIDCAuthenticator

CLIENT_ID = "labhub"
CLIENT_SECRET = "labhub-client-secret"


@dataclass
class Provider:
    """Issues one access token per authorization code; userinfo answers for that token."""

    url: str = ""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> claims
    token_requests: list[dict[str, str]] = field(default_factory=list)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append(form)
        claims = self.users.get(form.get("code", ""))
        if form.get("client_secret") != CLIENT_SECRET or claims is None:
            return web.json_response({"error": "invalid_grant", "error_description": "bad code"})
        id_token = jwt.encode(
            {**claims, "aud": CLIENT_ID},
            "local-provider-signing-key-0123456789abcdef",
            algorithm="HS256",
        )
        return web.json_response(
            {"access_token": "at-" + form["code"], "token_type": "Bearer", "id_token": id_token}
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        claims = self.users.get(token.removeprefix("at-"))
        if claims is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.Response(text=json.dumps(claims), content_type="application/json")


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[Provider]:
    prov = Provider()
    app = web.Application()
    app.router.add_post("/token", prov.token)
    app.router.add_get("/userinfo", prov.userinfo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    prov.url = f"http://127.0.0.1:{port}"
    try:
        yield prov
    finally:
        await runner.cleanup()


class Handler:
    def __init__(self, code: str) -> None:
        self.code = code
        self.request = SimpleNamespace(remote_ip="192.0.2.9", host="hub.lab", protocol="https")

    def get_argument(self, name: str, default: Any = None) -> Any:
        return self.code if name == "code" else default


def make(provider: Provider, **extra: Any) -> LabOIDCAuthenticator:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token_url": f"{provider.url}/token",
        "oauth_callback_url": "https://hub.lab/hub/oauth_callback",
        "enable_pkce": False,
        "username_claim": "preferred_username",
        "claim_groups_key": "groups",
        "allowed_groups": {"ml101-a", "ml101-b"},
        "admin_groups": {"hub-admins"},
        "group_name_map": {
            "cn=ml101-a,ou=groups,dc=lab,dc=example": "ml101-a",
            "shib-lab-admins": "hub-admins",
        },
    }
    if not extra.pop("from_id_token", False):
        settings["userdata_url"] = f"{provider.url}/userinfo"
    else:
        settings["userdata_from_id_token"] = True
    settings.update(extra)
    return LabOIDCAuthenticator(**settings)


STUDENT = {
    "preferred_username": "student01",
    "groups": ["cn=ml101-a,ou=groups,dc=lab,dc=example", "cn=cv201,ou=groups,dc=lab,dc=example"],
}
ADMIN = {"preferred_username": "labadmin", "groups": ["shib-lab-admins", "ml101-b"]}
OUTSIDER = {"preferred_username": "visitor", "groups": ["library"]}


@pytest.mark.parametrize("from_id_token", [False, True])
async def test_groups_are_mapped_and_admin_granted(provider: Provider, from_id_token: bool) -> None:
    provider.users.update({"c1": STUDENT, "c2": ADMIN, "c3": OUTSIDER})
    auth = make(provider, from_id_token=from_id_token)
    student = await auth.get_authenticated_user(Handler("c1"), None)
    assert student["name"] == "student01"
    assert student["groups"] == ["cv201", "ml101-a"]
    assert not student["admin"]
    admin = await auth.get_authenticated_user(Handler("c2"), None)
    assert admin["groups"] == ["hub-admins", "ml101-b"] and admin["admin"] is True
    assert await auth.get_authenticated_user(Handler("c3"), None) is None
    assert provider.token_requests[0]["redirect_uri"] == "https://hub.lab/hub/oauth_callback"


async def test_only_mapped_groups_and_course_access(provider: Provider) -> None:
    provider.users["c1"] = STUDENT
    auth = make(provider, keep_unmapped_groups=False, allowed_groups={"ml101-a"})
    model = await auth.get_authenticated_user(Handler("c1"), None)
    assert model["groups"] == ["ml101-a"]
    user = SimpleNamespace(
        name="student01", groups=[SimpleNamespace(name=g) for g in model["groups"]]
    )
    await auth.check_course_access(user, {"ml101-a"})
    with pytest.raises(CourseAccessError) as err:
        await auth.check_course_access(user, {"cv201"})
    assert "not a member of the group cv201" in err.value.message


async def test_bad_code_is_refused(provider: Provider) -> None:
    auth = make(provider)
    with pytest.raises(HTTPError) as err:
        await auth.get_authenticated_user(Handler("nope"), None)
    assert err.value.status_code == 403
