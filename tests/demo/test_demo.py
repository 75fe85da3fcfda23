"""``labhub demo`` end to end: real OpenLDAP, the development cluster, JupyterHub with LabHub.

The demo runs as a subprocess through the CLI entry (``python -m hub_ext demo``), is stopped with
Ctrl-C (SIGINT) once and SIGTERM once, and must leave no process behind; the second run on the
same state finds the file that a student saved in their home during the first.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from demo_process import (
    DemoProcess,
    alive,
    login,
    request_server,
    server_session,
    wait_for_server,
)

from hub_ext.adapters.ldap.reference_lab import slapd_available
from hub_ext.demo.processes import strays

pytestmark = pytest.mark.slow

NOTE = "results of lab 1: accuracy 0.93\n"


@pytest.fixture
def demos() -> Iterator[list[DemoProcess]]:
    started: list[DemoProcess] = []
    yield started
    for demo in started:
        demo.kill()


def _demo(demos: list[DemoProcess], state: Path) -> DemoProcess:
    if not slapd_available():
        pytest.fail("OpenLDAP's slapd is missing: install slapd and ldap-utils (make system-deps)")
    demo = DemoProcess(state)
    demos.append(demo)
    return demo


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_ext", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_login_stop_and_second_run_keep_homes(
    tmp_path: Path, demos: list[DemoProcess]
) -> None:
    state = tmp_path / "state"
    first = _demo(demos, state)
    url = first.start()
    assert "student01 / student01-Pa55word" in first.output
    assert "student26" in first.output and "labadmin / labadmin-Pa55word" in first.output

    # A second demo on the same state refuses; so does one on a port in use.
    again = _cli("--port", "0", "--state-dir", str(state))
    assert again.returncode == 2, again
    assert "already running" in again.stderr and "Traceback" not in again.stderr
    busy_port = url.rsplit(":", 1)[1]
    busy = _cli("--port", busy_port, "--state-dir", str(tmp_path / "other"))
    assert busy.returncode == 2, busy
    assert f"port {busy_port}" in busy.stderr and "--port" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1

    # A student logs in over HTTP, starts ml-101 and saves a file in their home.
    http = login(url, "student01")
    request_server(http, url, "student01", "ml-101")
    wait_for_server(url, "student01")
    headers = server_session(http, url, "student01")
    saved = http.put(
        f"{url}/user/student01/api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": NOTE},
        headers=headers,
        timeout=30,
    )
    assert saved.status_code in (200, 201), saved.text
    home = state / "cluster" / "volumes" / "default" / "claim-student01"
    assert (home / "notes.txt").read_text() == NOTE

    names = " ".join(" ".join(p.cmdline()) for p in first.processes())
    expected = ("slapd", "configurable-http-proxy", "jupyterhub-idle-culler", "singleuser")
    for part in expected:
        assert part in names, names
    below = first.processes()
    assert first.stop(signal.SIGINT) == 0, first.log
    assert alive(below) == [], first.output
    assert strays(state) == []
    assert not (state / "demo.pid").exists()

    # The second run (stopped with SIGTERM) serves the same home.
    second = _demo(demos, state)
    url = second.start()
    http = login(url, "student01")
    request_server(http, url, "student01", "ml-101")
    wait_for_server(url, "student01")
    headers = server_session(http, url, "student01")
    read = http.get(f"{url}/user/student01/api/contents/notes.txt", headers=headers, timeout=30)
    assert read.status_code == 200, read.text
    assert read.json()["content"] == NOTE
    below = second.processes()
    assert second.stop(signal.SIGTERM) == 0, second.log
    assert alive(below) == []
    assert strays(state) == []


def test_killed_demo_is_cleaned_up_by_the_next_run(
    tmp_path: Path, demos: list[DemoProcess]
) -> None:
    state = tmp_path / "state"
    crashed = _demo(demos, state)
    crashed.start()
    left = crashed.processes()
    assert crashed.proc is not None
    crashed.proc.kill()  # SIGKILL: no cleanup, a stale pid file and orphans stay behind
    crashed.proc.wait(timeout=10)
    assert alive(left), "the orphans of a killed demo should still run at this point"
    done = _cli("--port", "0", "--state-dir", str(state), "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left by an earlier demo run" in done.stdout
    assert "demo check passed" in done.stdout
    assert alive(left) == []
    assert strays(state) == []


def test_demo_errors_are_one_line(tmp_path: Path) -> None:
    bad = _cli("--port", "70000", "--state-dir", str(tmp_path / "s"))
    assert bad.returncode == 2 and "--port 70000" in bad.stderr
    cluster = tmp_path / "bad.yaml"
    cluster.write_text("name: x\nnodes: [{name: n, cpu: lots}]\n")
    broken = _cli("--port", "0", "--state-dir", str(tmp_path / "s"), "--cluster", str(cluster))
    assert broken.returncode == 1, broken
    assert broken.stderr.startswith("labhub demo: error: cluster file:"), broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def _named(procs: list[psutil.Process], needle: str) -> list[psutil.Process]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if needle in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def _until(probe: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_killed_hub_is_restarted_and_leaves_no_orphan(
    tmp_path: Path, demos: list[DemoProcess]
) -> None:
    state = tmp_path / "state"
    demo = _demo(demos, state)
    url = demo.start()
    below = demo.processes()
    (hub,) = _named(below, "jupyterhub -f")
    started_by_hub = hub.children(recursive=True)
    assert _named(started_by_hub, "jupyterhub-idle-culler"), started_by_hub
    assert _named(started_by_hub, "configurable-http-proxy"), started_by_hub

    hub.kill()  # SIGKILL: the hub cannot stop its proxy or its culler
    _until(lambda: "JupyterHub is running again" in demo.output, 120, "the hub restarted")
    assert "JupyterHub exited with code -9; restarting it" in demo.output, demo.output
    assert f"LabHub demo is running again: open {url}/" in demo.output
    assert alive(started_by_hub) == [], "the old hub's proxy or culler is still running"
    now = demo.processes()
    assert len(_named(now, "jupyterhub-idle-culler")) == 1
    assert len(_named(now, "jupyterhub -f")) == 1
    login(url, "student02")  # the restarted hub serves logins on the same URL

    below = demo.processes()
    assert demo.stop(signal.SIGINT) == 0, demo.log
    assert alive(below) == []
    assert strays(state) == []
