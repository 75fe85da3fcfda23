"""``hub.db.upgrade``: the real hub, started with the command and configuration the chart
renders, migrates a database of the previous JupyterHub schema after an online backup, and keeps
its users and servers."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic import command
from alembic.config import Config as AlembicConfig
from chart_render import one, render
from hub_config import mount_hub_files
from jupyterhub import dbutil, orm
from support import MEMORY_PROXY, VENV_BIN, free_port

from hub_ext.demo.processes import stop_process
from hub_ext.hub.db_upgrade import needs_upgrade, schema_revision

FULL = "gpulab-labhub"
PREVIOUS_REVISION = "ff1860e38070"  # the schema of the JupyterHub release before 6.x

TEST_CONFIG = '''
from jupyterhub.spawner import Spawner


class AlreadyRunning(Spawner):
    """Servers in the migrated database stay running (no cluster in this test)."""

    async def start(self):
        raise RuntimeError("no spawning in this test")

    async def stop(self, now=False):
        pass

    async def poll(self):
        return None


c.JupyterHub.proxy_class = RouteMemoryProxy
c.Proxy.should_start = False
c.JupyterHub.spawner_class = AlreadyRunning
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {port}
c.JupyterHub.hub_connect_url = "http://127.0.0.1:{port}"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.services.append({{"name": "tester", "api_token": "{token}"}})
c.JupyterHub.load_roles.append(
    {{"name": "tester", "services": ["tester"],
      "scopes": ["list:users", "read:users", "read:servers"]}}
)
'''


def _previous_version_db(db: Path) -> None:
    """A hub database with two users and their servers, at the previous JupyterHub schema."""
    url = f"sqlite:///{db}"
    session = orm.new_session_factory(url)()
    for name, servers in (("student01", [""]), ("student02", ["", "gpu"])):
        user = orm.User(name=name)
        session.add(user)
        for server_name in servers:
            spawner = orm.Spawner(user=user, name=server_name)
            spawner.server = orm.Server(ip="10.0.0.7", port=8888, base_url=f"/user/{name}/")
            session.add(spawner)
    session.commit()
    session.close()
    with dbutil._temp_alembic_ini(url) as ini:
        command.downgrade(AlembicConfig(ini), PREVIOUS_REVISION)


@pytest.fixture
def chart_hub(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "jupyterhub.sqlite"
    _previous_version_db(db)
    port, token = free_port(), secrets.token_hex(16)
    values = {
        "cull": {"enabled": False, "gpu": {"enabled": False}},
        "hub": {
            "extraConfig": {
                "zz-test": MEMORY_PROXY
                + TEST_CONFIG.format(db=db, port=port, proxy_port=free_port(), token=token)
            }
        },
    }
    values_file = tmp_path / "test-values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    docs = render("defaults-values.yaml", values_file)
    config_dir = mount_hub_files(docs, FULL, tmp_path)
    container = one(docs, "Deployment", f"{FULL}-hub")["spec"]["template"]["spec"]["containers"][0]
    cmd = [
        str(config_dir / "jupyterhub_config.py") if arg.endswith("jupyterhub_config.py") else arg
        for arg in container["command"]
    ]
    cmd[0] = str(VENV_BIN / "jupyterhub")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "LABHUB_CHART_VALUES": str(tmp_path / "secret" / "values.yaml"),
        "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
        "JPY_COOKIE_SECRET": secrets.token_hex(32),
        "LABHUB_METRICS_TOKEN": secrets.token_hex(16),
        "POD_NAMESPACE": "labhub",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "hub.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield {
            "proc": proc,
            "cmd": cmd,
            "db": db,
            "url": f"http://127.0.0.1:{port}",
            "token": token,
            "log": log_path,
        }
    finally:
        stop_process(proc, 30)


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
        return json.loads(reply.read())


def _wait_healthy(hub: dict[str, Any], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub["proc"].poll() is not None:
            raise AssertionError(f"the hub exited:\n{hub['log'].read_text()[-4000:]}")
        try:
            health = hub["url"] + "/hub/health"
            with urllib.request.urlopen(health, timeout=5) as reply:  # noqa: S310
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the hub did not get healthy:\n{hub['log'].read_text()[-4000:]}")


def test_the_chart_hub_command_migrates_and_keeps_users_and_servers(
    chart_hub: dict[str, Any],
) -> None:
    assert "--upgrade-db" in chart_hub["cmd"]
    db: Path = chart_hub["db"]
    _wait_healthy(chart_hub)
    assert not needs_upgrade(f"sqlite:///{db}")
    users = {u["name"]: u for u in _get(chart_hub["url"] + "/hub/api/users", chart_hub["token"])}
    assert set(users) == {"student01", "student02"}
    assert set(users["student02"]["servers"]) == {"", "gpu"}
    assert set(users["student01"]["servers"]) == {""}
    backups = sorted((db.parent / "backups").glob("jupyterhub-*.sqlite"))
    assert [b.name.split("-")[1] for b in backups] == [PREVIOUS_REVISION]
    assert schema_revision(f"sqlite:///{backups[0]}") == PREVIOUS_REVISION
    with sqlite3.connect(backups[0]) as conn:
        names = sorted(r[0] for r in conn.execute("SELECT name FROM users"))
    assert names == ["student01", "student02"]
    assert "backed up" in chart_hub["log"].read_text()


def test_upgrade_false_leaves_the_flag_off(tmp_path: Path) -> None:
    db = tmp_path / "jupyterhub.sqlite"
    _previous_version_db(db)
    assert needs_upgrade(f"sqlite:///{db}")
    docs = render("defaults-values.yaml", sets=("hub.db.upgrade=false",))
    container = one(docs, "Deployment", f"{FULL}-hub")["spec"]["template"]["spec"]["containers"][0]
    assert "--upgrade-db" not in container["command"]
