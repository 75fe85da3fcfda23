"""The admin view in a real JupyterHub: admins get the page and the JSON, others get 403."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from admin_hub import AdminHub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminHub]:
    server = AdminHub(tmp_path_factory.mktemp("admin-hub"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_admin_gets_page_and_json(hub: AdminHub) -> None:
    token = hub.user_token("labadmin")
    page = hub.request("/hub/labhub/admin", browser=hub.browser("labadmin"))
    assert page.status == 200, hub.log_text()[-2000:]
    assert "text/html" in page.content_type
    assert "LabHub lab overview" in page.body
    assert "<h2>Slices by node</h2>" in page.body
    assert 'id="no-controller"' in page.body  # no server started, so no admission yet
    assert "Logout" in page.body or "logout" in page.body  # the hub's own page layout
    api = hub.request("/hub/labhub/api/overview", token)
    assert api.status == 200
    assert hub.request("/hub/labhub/api/overview", browser=hub.browser("labadmin")).status == 200
    assert api.content_type.startswith("application/json")
    data = api.json()
    assert set(data) == {"now", "admission", "gpus", "sessions", "profileProblems"}
    assert data["admission"] is None and data["gpus"] == []


def test_a_profiles_path_without_courses_is_reported(hub: AdminHub) -> None:
    page = hub.request("/hub/labhub/admin", browser=hub.browser("labadmin"))
    assert 'id="profile-problems"' in page.body
    assert "found 0 courses at" in page.body and "no-courses-here" in page.body
    data = hub.request("/hub/labhub/api/overview", hub.user_token("labadmin")).json()
    assert any("found 0 courses" in p for p in data["profileProblems"]), data
    assert "found 0 courses at" in hub.log_text()


def test_non_admin_gets_403(hub: AdminHub) -> None:
    token = hub.user_token("student01")
    page = hub.request("/hub/labhub/admin", browser=hub.browser("student01"))
    assert page.status == 403
    assert "administrators only" in page.body
    api = hub.request("/hub/labhub/api/overview", token)
    assert api.status == 403
    assert "administrators only" in api.json()["message"]


def test_anonymous_gets_no_data(hub: AdminHub) -> None:
    api = hub.request("/hub/labhub/api/overview")
    assert api.status == 403
    assert "slice" not in api.body
    page = hub.request("/hub/labhub/admin")
    assert page.status in (200, 302, 403)
    assert "LabHub lab overview" not in page.body  # redirected to the login page
