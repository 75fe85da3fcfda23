"""A real browser (Debian's chromium, headless, driven by Playwright) on the demo stack.

The demo runs with a one-slice cluster (``one-slice-lab.yaml``) so that the lab is full after
one student. Screenshots of every step go to ``$LABHUB_TEST_ARTIFACTS/browser`` (default
``test-artifacts/browser`` in the repository).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
from demo_process import DemoProcess, alive, login, request_server

from hub_ext.adapters.ldap.reference_lab import lab_password, slapd_available
from hub_ext.demo.processes import strays

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("LABHUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("LABHUB_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
POSITION = re.compile(r"position (\d+) of (\d+)")
# Students of seminar group ml101-a only (student01-05 are also in cv201).
FIRST, SECOND, THIRD = "student10", "student11", "student12"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoProcess]:
    if not slapd_available():
        pytest.fail("OpenLDAP's slapd is missing: install slapd and ldap-utils (make system-deps)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium")
    stack = DemoProcess(tmp_path / "state", ("--cluster", str(HERE / "one-slice-lab.yaml")))
    stack.start()
    try:
        yield stack
        below = stack.processes()
        assert stack.stop(signal.SIGTERM) == 0, stack.log
        assert alive(below) == []
        assert strays(stack.state) == []
    finally:
        stack.kill()


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def _login(browser: object, url: str, user: str, shot: str = "") -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", lab_password(user))
    if shot:
        _shot(page, shot)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
    return page


def _position(page: object) -> tuple[int, int] | None:
    text = page.locator("#progress-message").inner_text()  # type: ignore[attr-defined]
    match = POSITION.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _wait_position(page: object, expected: tuple[int, int], timeout: float = 90.0) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        """([want]) => {
            const el = document.querySelector('#progress-message');
            return el && el.textContent.includes(want);
        }""",
        arg=[f"position {expected[0]} of {expected[1]}"],
        timeout=timeout * 1000,
    )
    assert _position(page) == expected


def test_student_runs_a_cell_queue_advances_admin_view(demo: DemoProcess, browser: object) -> None:
    try:
        _steps(demo.url, browser)
    except BaseException:
        for number, context in enumerate(browser.contexts):  # type: ignore[attr-defined]
            for page in context.pages:
                _shot(page, f"failed-{number}")
        raise


def _steps(url: str, browser: object) -> None:

    # 1. A student logs in through the login page and sees only their course, with capacity.
    first = _login(browser, url, FIRST, shot="01-login")
    first.goto(f"{url}/hub/spawn")
    profiles = first.locator(".labhub-profile")
    assert profiles.count() == 1
    assert "Machine Learning 101" in profiles.first.inner_text()
    assert "Computer Vision" not in first.content()
    assert "1 of 1 free" in first.locator(".labhub-capacity").first.inner_text()
    _shot(first, "02-profiles")

    # 2. ml-101 starts and JupyterLab opens; a notebook cell prints 42.
    first.check("input[name=profile][value=ml-101]")
    first.click("#spawn_form button[type=submit]")
    first.wait_for_url(re.compile(rf".*/user/{FIRST}/lab.*"), timeout=180_000)
    first.locator(".jp-LauncherCard[data-category='Notebook']").first.click()
    editor = first.locator(".jp-Notebook .jp-Cell .cm-content").first
    editor.wait_for()
    first.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    _shot(first, "03-jupyterlab")
    editor.click()
    first.keyboard.type("print(6 * 7)")
    assert "print(6 * 7)" in editor.inner_text()
    first.keyboard.press("Shift+Enter")
    output = first.locator(".jp-OutputArea-output").first
    output.wait_for(timeout=120_000)
    assert output.inner_text().strip() == "42"
    _shot(first, "04-cell-prints-42")

    # 3. The lab is full: one student waits (over HTTP), the next one sees position 2 of 2 ...
    second = login(url, SECOND)
    request_server(second, url, SECOND, "ml-101")
    third = _login(browser, url, THIRD)
    third.goto(f"{url}/hub/spawn")
    capacity = third.locator(".labhub-capacity").first.inner_text()
    assert "0 of 1 free" in capacity and "1 waiting" in capacity, capacity
    third.click("#spawn_form button[type=submit]")
    third.wait_for_url(re.compile(rf".*/hub/spawn-pending/{THIRD}.*"), timeout=60_000)
    _wait_position(third, (2, 2))
    _shot(third, "05-queue-position-2")

    # ... and position 1 of 1 once the first student stops their server.
    first.goto(f"{url}/hub/home")
    first.click("#stop")
    _wait_position(third, (1, 1), timeout=120)
    _shot(third, "06-queue-position-1")

    # 4. An admin opens the LabHub admin view.
    admin = _login(browser, url, "labadmin")
    reply = admin.goto(f"{url}/hub/labhub/admin")
    _shot(admin, "07-admin-view")
    status = reply.status if reply is not None else None
    assert status == 200, f"/hub/labhub/admin answered {status} (is hub_ext.hub.admin_view there?)"
    assert SECOND in admin.content()
    second.close()
