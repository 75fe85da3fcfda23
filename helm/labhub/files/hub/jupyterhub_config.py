# LabHub hub configuration, driven by the Helm chart's values.
#
# The chart mounts this file, labhub_chart.py beside it, and the values the hub needs (a Secret,
# named by LABHUB_CHART_VALUES). Add site-specific Python with the chart value hub.extraConfig.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labhub_chart import (  # noqa: E402
    ChartValues,
    apply,
    hub_settings,
    ldap_settings,
    oidc_settings,
    proxy_settings,
    services_and_roles,
    spawner_settings,
    sqlite_wal,
)

c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)
values = ChartValues.load()
env = dict(os.environ)

apply(c.JupyterHub, hub_settings(values))
if sqlite_wal(values):
    from hub_ext.hub.hubdb import use_sqlite_wal

    use_sqlite_wal()

if env.get("LABHUB_BACKUP_METRICS_FILE"):
    from pathlib import Path

    from hub_ext.hub.metrics import register_backup_status

    register_backup_status(Path(env["LABHUB_BACKUP_METRICS_FILE"]))

proxy_class, proxy = proxy_settings(values, env)
apply(c[proxy_class], proxy)

authenticator = values.get("labhub.authenticator")
if authenticator == "ldap":
    apply(c.LabLDAPAuthenticator, ldap_settings(values, env))
elif authenticator == "oidc":
    apply(c.LabOIDCAuthenticator, oidc_settings(values, env))
c.Authenticator.admin_users = set(values.get("hub.adminUsers", []))

apply(c.LabKubeSpawner, spawner_settings(values))

services, roles = services_and_roles(values, env)
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

for class_name, traits in sorted((values.get("hub.config", {}) or {}).items()):
    apply(c[class_name], traits)

for _name, snippet in sorted((values.get("hub.extraConfig", {}) or {}).items()):
    exec(compile(snippet, f"<hub.extraConfig.{_name}>", "exec"))  # noqa: S102

# Refuse at start-up any spawner setting (from the values, hub.config or hub.extraConfig) that
# would loosen the security floor of student pods; the error names each setting.
from hub_ext.hub.spawner.spawner import check_security_floor  # noqa: E402

check_security_floor(c)

# Last, so that hub.config and hub.extraConfig can change the database: back it up before
# `--upgrade-db` (hub.db.upgrade) migrates its schema.
if values.get("hub.db.upgrade", False):
    from datetime import UTC, datetime
    from pathlib import Path

    from hub_ext.hub.db_upgrade import BackupError, backup_before_upgrade

    try:
        backup = backup_before_upgrade(
            str(c.JupyterHub.db_url), datetime.now(UTC), Path(values.get("computed.backupDir"))
        )
    except BackupError as exc:
        raise SystemExit(f"LabHub: {exc}") from None
    if backup is not None:
        print(f"LabHub: hub.db.upgrade: backed up the hub database to {backup}", file=sys.stderr)
