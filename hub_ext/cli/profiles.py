"""``labhub profiles validate|show``: check and inspect course profiles."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import yaml

from hub_ext.core.profiles import CourseProfile, Policy, ProfileError, parse_policy, parse_profile


def _load_dir(
    root: Path, policy: Policy | None = None
) -> tuple[dict[str, CourseProfile], list[ProfileError]]:
    profiles: dict[str, CourseProfile] = {}
    errors: list[ProfileError] = []
    for path in sorted(root.glob("*/profile.yaml")):
        rel = str(path.relative_to(root))
        profile, errs = parse_profile(
            path.read_text(encoding="utf-8", errors="replace"), rel, policy
        )
        errors.extend(errs)
        if profile is None:
            continue
        if profile.slug != path.parent.name:
            errors.append(
                ProfileError(rel, None, "slug", "must equal the folder name", path.parent.name)
            )
        elif profile.slug in profiles:
            errors.append(ProfileError(rel, None, "slug", "duplicate slug"))
        else:
            profiles[profile.slug] = profile
    return profiles, errors


def _validate(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        print(
            f"labhub profiles validate: {root} is not a directory; pass a profiles folder",
            file=sys.stderr,
        )
        return 2
    policy = None
    if args.policy:
        try:
            policy = parse_policy(Path(args.policy).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(
                f"labhub profiles validate: cannot read policy {args.policy}: {exc}",
                file=sys.stderr,
            )
            return 2
    profiles, errors = _load_dir(root, policy)
    if args.format == "json":
        print(
            json.dumps({"valid": sorted(profiles), "errors": [asdict(e) for e in errors]}, indent=2)
        )
    else:
        for e in errors:
            print(e)
        print(f"{len(profiles)} valid profile(s), {len(errors)} error(s)")
    return 1 if errors else 0


def _show(args: argparse.Namespace) -> int:
    profiles, _ = _load_dir(Path(args.dir))
    profile = profiles.get(args.slug)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none"
        print(
            f"labhub profiles show: unknown or invalid course {args.slug!r}; valid: {known}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(asdict(profile), indent=2, default=str))
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = resources.files("hub_ext.core").joinpath("data/profile.schema.yaml").read_text()
    print(json.dumps(yaml.safe_load(text), indent=2))
    return 0


def _pin(args: argparse.Namespace) -> int:
    if not args.digest.startswith("sha256:") or len(args.digest) != 71:
        print("labhub profiles pin: digest must be sha256:<64 hex digits>", file=sys.stderr)
        return 2
    lock = Path(args.dir) / "images.lock.yaml"
    data = yaml.safe_load(lock.read_text()) if lock.exists() else {}
    data = data if isinstance(data, dict) else {}
    data[args.slug] = args.digest
    lock.write_text(yaml.safe_dump(dict(sorted(data.items()))))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("profiles", help="Validate and inspect course profiles.")
    sub = parser.add_subparsers(dest="profiles_command", required=True)
    val = sub.add_parser("validate", help="Validate every profiles/<course>/profile.yaml.")
    val.add_argument("dir", nargs="?", default="profiles")
    val.add_argument("--policy", help="Global ops policy file (policy.yaml).")
    val.add_argument("--format", choices=("text", "json"), default="text")
    val.set_defaults(func=_validate)
    show = sub.add_parser("show", help="Show one validated course profile.")
    show.add_argument("slug")
    show.add_argument("--dir", default="profiles")
    show.set_defaults(func=_show)
    schema = sub.add_parser("schema", help="Print the profile JSON Schema.")
    schema.set_defaults(func=_schema)
    pin = sub.add_parser("pin", help="Write a pushed image digest into images.lock.yaml.")
    pin.add_argument("slug")
    pin.add_argument("digest")
    pin.add_argument("--dir", default="profiles")
    pin.set_defaults(func=_pin)
