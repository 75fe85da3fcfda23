"""``labhub values migrate``: Zero to JupyterHub values into LabHub values and course profiles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from hub_ext.cli.z2jh import migrate

HEADER = """\
# LabHub chart values written by `labhub values migrate` from {source}.
# What had no LabHub equivalent is listed in {report}; read it before installing.
"""


def _migrate(args: argparse.Namespace) -> int:
    source = Path(args.z2jh_values)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"labhub values migrate: cannot read {source}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(data, dict):
        print(f"labhub values migrate: {source} must hold a mapping of values", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(
            f"labhub values migrate: {out} is not empty; choose another --out or pass --force",
            file=sys.stderr,
        )
        return 2
    result = migrate(data)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "migration-report.txt"
    values_text = HEADER.format(source=source.name, report=report.name)
    values_text += yaml.safe_dump(result.values, sort_keys=False, allow_unicode=True)
    (out / "values.yaml").write_text(values_text, encoding="utf-8")
    for slug, profile in result.profiles.items():
        folder = out / "profiles" / slug
        folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(profile, sort_keys=False, allow_unicode=True)
        (folder / "profile.yaml").write_text(text, encoding="utf-8")
    if result.secrets:
        docs = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "type": "Opaque",
                "stringData": data,
            }
            for name, data in result.secrets.items()
        ]
        secrets = out / "secrets.yaml"
        secrets.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        secrets.chmod(0o600)
    lines = [f"{source.name}: settings moved elsewhere or without a LabHub equivalent:", ""]
    lines += [f"- {line}" for line in result.report] or ["- none"]
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"wrote {out / 'values.yaml'} and {len(result.profiles)} course profile(s) under "
        f"{out / 'profiles'}"
    )
    for line in result.report:
        print(f"no equivalent: {line}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("values", help="Work with the chart's values files.")
    sub = parser.add_subparsers(dest="values_command", required=True)
    mig = sub.add_parser(
        "migrate",
        help="Turn Zero to JupyterHub values into LabHub values and course profiles.",
        description="Writes OUT/values.yaml (the LabHub chart values, with the course profiles "
        "inline), OUT/profiles/<course>/profile.yaml (one per singleuser.profileList entry, for a "
        "profiles repository) and OUT/migration-report.txt (every setting without an "
        "equivalent, also printed).",
    )
    mig.add_argument(
        "z2jh_values", metavar="Z2JH_VALUES", help="The Zero to JupyterHub values file."
    )
    mig.add_argument(
        "--out", default="labhub-migrated", help="Output folder (default: labhub-migrated)."
    )
    mig.add_argument("--force", action="store_true", help="Write into a folder that is not empty.")
    mig.set_defaults(func=_migrate)
