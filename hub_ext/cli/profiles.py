"""``labhub profiles validate|show``: check and inspect course profiles."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from enum import Enum
from importlib import resources
from pathlib import Path

import yaml

from hub_ext.adapters.profile_source import no_courses_message, read_profile_dirs
from hub_ext.cli.lab_slices import LabError, lab_slice_types, missing_slice_types
from hub_ext.core.profiles.model import CourseProfile, ImageRef
from hub_ext.core.profiles.set import DIGEST, LOCK_FILE, ProfileSet, parse_lock, render_lock


def _policy_path(dirs: list[Path], given: str | None) -> Path | None:
    if given:
        return Path(given)
    default = dirs[0] / "policy.yaml"
    return default if default.is_file() else None


def _load(dirs: list[Path], policy: str | None) -> ProfileSet:
    return read_profile_dirs(dirs, _policy_path(dirs, policy))[0]


def _validate(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dir or ["profiles"]]
    for root in dirs:
        if not root.is_dir():
            print(
                f"labhub profiles validate: {root} is not a directory; pass a profiles folder",
                file=sys.stderr,
            )
            return 2
    try:
        result, present = read_profile_dirs(dirs, _policy_path(dirs, args.policy))
    except (OSError, ValueError) as exc:
        print(f"labhub profiles validate: {exc}", file=sys.stderr)
        return 2
    if not present:
        print(f"labhub profiles validate: {no_courses_message(dirs)}", file=sys.stderr)
        return 1
    lab_errors: list[str] = []
    if args.lab:
        try:
            offered = lab_slice_types(Path(args.lab))
        except LabError as exc:
            print(f"labhub profiles validate: {exc}", file=sys.stderr)
            return 2
        lab_errors = missing_slice_types(result.profiles, offered)
    valid = [p.slug for p in result.profiles]
    if args.format == "json":
        doc = {
            "valid": valid,
            "errors": [asdict(e) for e in result.errors],
            "warnings": [asdict(e) for e in result.warnings],
            "lab_errors": lab_errors,
        }
        print(json.dumps(doc, indent=2))
    else:
        for e in result.errors:
            print(e)
        for message in lab_errors:
            print(message)
        for w in result.warnings:
            print(f"warning: {w}")
        errors = len(result.errors) + len(lab_errors)
        print(f"{len(valid)} valid profile(s), {errors} error(s)")
    return 1 if result.errors or lab_errors else 0


def _json_value(value: object) -> object:
    return value.value if isinstance(value, Enum) else str(value)


def _show(args: argparse.Namespace) -> int:
    try:
        profiles = _load([Path(args.dir)], args.policy).by_slug()
    except (OSError, ValueError) as exc:
        print(f"labhub profiles show: {exc}", file=sys.stderr)
        return 2
    profile: CourseProfile | None = profiles.get(args.slug)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none"
        print(
            f"labhub profiles show: unknown or invalid course {args.slug!r}; valid: {known}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(asdict(profile), indent=2, default=_json_value))
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        profiles = _load([Path(args.dir)], args.policy).profiles
    except (OSError, ValueError) as exc:
        print(f"labhub profiles list: {exc}", file=sys.stderr)
        return 2
    only = set(args.only or ())
    for profile in profiles:
        if not only or profile.slug in only:
            print(f"{profile.slug} {profile.image.repository}:{profile.image.tag}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = resources.files("hub_ext.core.profiles").joinpath("data/profile.schema.yaml").read_text()
    print(json.dumps(yaml.safe_load(text), indent=2))
    return 0


def _pin(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    ref = str(args.digest)
    digest = ref.rsplit("@", 1)[-1]
    if not DIGEST.match(digest):
        print(
            f"labhub profiles pin: {ref!r} is not a digest; pass sha256:<64 hex digits> "
            "or registry/repository:tag@sha256:<64 hex digits>",
            file=sys.stderr,
        )
        return 2
    try:
        profiles = _load([root], args.policy).by_slug()
    except (OSError, ValueError) as exc:
        print(f"labhub profiles pin: {exc}", file=sys.stderr)
        return 2
    profile = profiles.get(args.slug)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none"
        print(
            f"labhub profiles pin: unknown or invalid course {args.slug!r}; valid: {known}",
            file=sys.stderr,
        )
        return 1
    image = profile.image
    if "@" in ref and ref.rsplit("@", 1)[0] != f"{image.repository}:{image.tag}":
        print(
            f"labhub profiles pin: {ref.rsplit('@', 1)[0]} is not the image of {args.slug} "
            f"({image.repository}:{image.tag}); build and push that image",
            file=sys.stderr,
        )
        return 2
    lock = root / LOCK_FILE
    pins: dict[str, ImageRef] = {}
    if lock.exists():
        pins, errors = parse_lock(lock.read_text(encoding="utf-8"), str(lock))
        if errors:
            print(f"labhub profiles pin: {errors[0]}; fix or delete the entry", file=sys.stderr)
            return 2
    pins[args.slug] = ImageRef(image.repository, image.tag, digest)
    lock.write_text(render_lock(pins), encoding="utf-8")
    print(f"pinned {args.slug}: {pins[args.slug].reference}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("profiles", help="Validate and inspect course profiles.")
    sub = parser.add_subparsers(dest="profiles_command", required=True)
    val = sub.add_parser("validate", help="Validate every profiles/<course>/profile.yaml.")
    val.add_argument(
        "dir", nargs="*", help="Profile directories (default: profiles); slugs must be unique."
    )
    val.add_argument("--policy", help="Global ops policy file (default: DIR/policy.yaml).")
    val.add_argument("--format", choices=("text", "json"), default="text")
    val.add_argument(
        "--lab",
        metavar="FILE",
        help="Also report slice types the lab does not offer: a cluster file (devcluster YAML) "
        "or the kubeconfig of the live cluster.",
    )
    val.set_defaults(func=_validate)
    show = sub.add_parser("show", help="Show one validated course profile.")
    show.add_argument("slug")
    show.add_argument("--dir", default="profiles")
    show.add_argument("--policy", help="Global ops policy file (default: DIR/policy.yaml).")
    show.set_defaults(func=_show)
    lst = sub.add_parser("list", help="Print 'SLUG IMAGE' for every valid course (for CI builds).")
    lst.add_argument("only", nargs="*", help="Only these course slugs.")
    lst.add_argument("--dir", default="profiles")
    lst.add_argument("--policy", help="Global ops policy file (default: DIR/policy.yaml).")
    lst.set_defaults(func=_list)
    schema = sub.add_parser("schema", help="Print the profile JSON Schema.")
    schema.set_defaults(func=_schema)
    pin = sub.add_parser("pin", help="Write a pushed image digest into images.lock.yaml.")
    pin.add_argument("slug")
    pin.add_argument("digest", help="sha256:... or registry/repository:tag@sha256:...")
    pin.add_argument("--dir", default="profiles")
    pin.add_argument("--policy", help="Global ops policy file (default: DIR/policy.yaml).")
    pin.set_defaults(func=_pin)
