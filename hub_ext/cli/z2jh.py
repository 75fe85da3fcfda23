"""Zero to JupyterHub values turned into LabHub chart values and course profiles.

:func:`migrate` maps each Z2JH setting whose meaning carries over to its LabHub value, turns every
``singleuser.profileList`` entry into a course profile (its ``kubespawner_override`` keys mapped
to profile fields) and lists every setting that has no LabHub equivalent, with what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hub_ext.cli.z2jh_keys import AUTH_CLASSES, LDAP_KEYS, NO_EQUIVALENT, OIDC_KEYS, SAME
from hub_ext.core.profiles.overrides import override_problems

#: Secrets the migration writes (secrets.yaml) for values Z2JH took in plain text.
DB_SECRET = "labhub-hub-db-password"  # noqa: S105 (a Secret name)
OIDC_SECRET = "labhub-oidc-client"  # noqa: S105 (a Secret name)
#: A whole GPU as MIG slices: the full-GPU profiles of the 80 GB and 40 GB cards.
WHOLE_GPU_SLICES = ("7g.80gb", "7g.40gb")


@dataclass
class Migration:
    """The LabHub values, the course profiles (slug -> profile) and the report lines."""

    values: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def _get(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _leaves(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict) or not data:
        return [prefix] if prefix else []
    out: list[str] = []
    for key, value in data.items():
        out += _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def _covered(key: str, prefixes: set[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def migrate(z2jh: dict[str, Any]) -> Migration:
    """Map Z2JH values (a parsed values file) to LabHub's."""
    out = Migration()
    for key in SAME:
        value = _get(z2jh, key)
        if value is not None:
            _set(out.values, key, value)
    db_type = _get(z2jh, "hub.db.type")
    if db_type in ("sqlite-pvc", "postgres"):
        _set(out.values, "hub.db.type", db_type)
    elif db_type is not None:
        out.report.append(f"hub.db.type={db_type}: not supported; LabHub uses sqlite-pvc")
    password = _get(z2jh, "hub.db.password")
    if password is not None:
        _set(out.values, "hub.db.passwordSecret", {"name": DB_SECRET, "key": "password"})
        out.secrets[DB_SECRET] = {"password": str(password)}
        out.report.append(
            f"hub.db.password: moved into the Secret {DB_SECRET} (secrets.yaml; apply it "
            "before installing), named by hub.db.passwordSecret"
        )
    for name, value in (_get(z2jh, "hub.extraEnv") or {}).items():
        if isinstance(value, (str, int, float, bool)):
            _set(out.values, f"hub.extraEnv.{name}", str(value))
        else:
            out.report.append(f"hub.extraEnv.{name}: only plain values carry over (no valueFrom)")
    _authenticator(z2jh, out)
    base = {
        target: _get(z2jh, key)
        for key, target in (
            ("singleuser.cpu.guarantee", "cpu_guarantee"),
            ("singleuser.cpu.limit", "cpu_limit"),
            ("singleuser.memory.guarantee", "memory_guarantee"),
            ("singleuser.memory.limit", "memory_limit"),
        )
        if _get(z2jh, key) is not None
    }
    home = _get(z2jh, "singleuser.storage.capacity")
    for index, entry in enumerate(_get(z2jh, "singleuser.profileList") or []):
        _profile(entry, index, out, base, home)
    if not out.profiles:  # Z2JH without profileList offers one environment
        _profile({"display_name": "Default", "slug": "default"}, 0, out, base, home)
    image = _get(z2jh, "singleuser.image.name")
    default_image = f"{image}:{_get(z2jh, 'singleuser.image.tag') or 'latest'}" if image else None
    for slug, profile in out.profiles.items():
        if "image" not in profile:
            profile["image"] = _image(default_image or "quay.io/jupyter/scipy-notebook:2025-03-17")
            out.report.append(f"{slug}: image {profile['image']} (singleuser.image or the default)")
    registries = sorted({p["image"].split("/", 1)[0] for p in out.profiles.values()})
    if registries:
        _set(out.values, "labhub.policy.allowedRegistries", registries)
        _set(out.values, "labhub.profiles.source", "inline")
        _set(out.values, "labhub.profiles.inline", out.profiles)
    done = set(SAME) | {
        "hub.db.type",
        "hub.db.password",
        "hub.extraEnv",
        "singleuser.profileList",
        "hub.config",
    }
    groups: dict[str, list[str]] = {}
    for key in _leaves(z2jh):
        if not _covered(key, done):
            top = next((p for p in NO_EQUIVALENT if _covered(key, {p})), key)
            groups.setdefault(top, []).append(key[len(top) + 1 :])
    for top, keys in groups.items():
        inner = [k for k in keys if k]
        hint = NO_EQUIVALENT.get(top, "")
        listed = f" ({', '.join(inner)})" if inner else ""
        out.report.append(f"{top}{listed}: no LabHub equivalent" + (f"; {hint}" if hint else ""))
    return out


def _authenticator(z2jh: dict[str, Any], out: Migration) -> None:
    config = dict(_get(z2jh, "hub.config") or {})
    choice = str((config.get("JupyterHub") or {}).get("authenticator_class") or "")
    kind = AUTH_CLASSES.get(choice)
    if kind is None:
        if choice:
            out.report.append(
                f"hub.config.JupyterHub.authenticator_class={choice}: LabHub logs in through LDAP "
                "or OIDC; set labhub.authenticator and its settings"
            )
        return
    _set(out.values, "labhub.authenticator", kind)
    jupyterhub = {k: v for k, v in config["JupyterHub"].items() if k != "authenticator_class"}
    rest = {k: v for k, v in config.items() if k != "JupyterHub"}
    if jupyterhub:
        rest["JupyterHub"] = jupyterhub
    if kind == "ldap":
        section = dict(rest.pop("LDAPAuthenticator", {}) or {})
        address, port = section.pop("server_address", None), section.pop("server_port", None)
        tls = section.pop("use_ssl", None)
        if address:
            scheme = "ldaps" if tls is not False else "ldap"
            url = f"{scheme}://{address}" + (f":{port}" if port else "")
            _set(out.values, "labhub.ldap.servers", [{"url": url}])
        for key, target in LDAP_KEYS.items():
            value = section.pop(key, None)
            if value is None:
                continue
            if target is None:
                out.report.append(
                    f"hub.config.LDAPAuthenticator.{key}: LabHub matches group names "
                    "(labhub.ldap.groups.allowed) found under labhub.ldap.groups.searchBase"
                )
            else:
                value = [value] if target == "bindDnTemplate" and isinstance(value, str) else value
                _set(out.values, f"labhub.ldap.{target}", value)
        for key in section:
            out.report.append(f"hub.config.LDAPAuthenticator.{key}: no LabHub equivalent")
    else:
        section = dict(rest.pop("GenericOAuthenticator", {}) or {})
        for key, target in OIDC_KEYS.items():
            if key in section:
                _set(out.values, f"labhub.oidc.{target}", section.pop(key))
        secret = section.pop("client_secret", None)
        if secret is not None:
            _set(out.values, "labhub.oidc.clientSecret", {"secretName": OIDC_SECRET})
            out.secrets[OIDC_SECRET] = {"client-secret": str(secret)}
            out.report.append(
                f"hub.config.GenericOAuthenticator.client_secret: moved into the Secret "
                f"{OIDC_SECRET} (secrets.yaml; apply it before installing)"
            )
        for key in section:
            out.report.append(f"hub.config.GenericOAuthenticator.{key}: no LabHub equivalent")
    admins = (rest.get("Authenticator") or {}).pop("admin_users", None)
    if admins:
        _set(out.values, "hub.adminUsers", sorted(admins))
    rest = {k: v for k, v in rest.items() if v}
    if rest:
        _set(out.values, "hub.config", rest)
    else:
        out.values.get("hub", {}).pop("config", None)


def slug_of(entry: dict[str, Any], index: int) -> str:
    """The course slug of a profileList entry: its ``slug``, else from its display name."""
    raw = str(entry.get("slug") or entry.get("display_name") or f"profile-{index + 1}")
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:63]
    return slug if len(slug) >= 2 else f"profile-{index + 1}"


def _image(name: str) -> str:
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    return name


def _gpu(limits: dict[str, Any]) -> dict[str, Any] | None:
    slices = []
    for resource in limits:
        match = re.match(r"^nvidia\.com/mig-(\d+g\.\d+gb)$", str(resource))
        if match:
            slices.append(match.group(1))
        elif resource == "nvidia.com/gpu":
            slices += WHOLE_GPU_SLICES
    return {"slice_types": slices} if slices else None


def _apply_override(
    profile: dict[str, Any], override: dict[str, Any], where: str, out: Migration
) -> None:
    resources: dict[str, Any] = profile.setdefault("resources", {})
    rest: dict[str, Any] = {}
    simple = {
        "cpu_guarantee": ("resources", "cpu_guarantee"),
        "cpu_limit": ("resources", "cpu_limit"),
        "mem_guarantee": ("resources", "memory_guarantee"),
        "mem_limit": ("resources", "memory_limit"),
        "default_url": (None, "default_url"),
        "storage_capacity": ("storage", "home_size"),
        "storage_class": ("storage", "storage_class"),
    }
    for key, value in override.items():
        if key == "image":
            profile["image"] = _image(str(value))
        elif key in simple:
            section, target = simple[key]
            if section is None:
                profile[target] = value
            elif section == "resources":
                resources[target] = value
            else:
                profile.setdefault(section, {})[target] = value
        elif key == "environment" and isinstance(value, dict):
            env = {k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))}
            profile.setdefault("env", {}).update(env)
            for name in sorted(set(value) - set(env)):
                out.report.append(f"{where}.environment.{name}: only plain values carry over")
        elif key == "extra_resource_limits" and isinstance(value, dict):
            gpu = _gpu(value)
            if gpu:
                profile["gpu"] = gpu
            if "nvidia.com/gpu" in value:
                out.report.append(
                    f"{where}.extra_resource_limits.nvidia.com/gpu: a whole GPU became the "
                    f"full-GPU MIG slices {', '.join(WHOLE_GPU_SLICES)}; choose the slice type "
                    "the course needs"
                )
            for resource in value:
                if not str(resource).startswith("nvidia.com/"):
                    out.report.append(f"{where}.extra_resource_limits.{resource}: no equivalent")
        elif key == "extra_resource_guarantees":
            continue  # the GPU request is the limit
        else:
            rest[key] = value
    bad = {
        name: f"{name} {problem}; allowed: {accepted}"
        for name, problem, accepted in override_problems(rest)
    }
    for name, why in sorted(bad.items()):
        out.report.append(f"{where}.{name}: not carried over: {why}")
    kept = {k: v for k, v in rest.items() if k not in bad}
    if kept:
        profile.setdefault("kubespawner_override", {}).update(kept)


def _complete_resources(profile: dict[str, Any]) -> None:
    """A guarantee without a limit (or the reverse) takes the other's value, as KubeSpawner
    leaves the missing one unset and LabHub's profile defaults could contradict it."""
    resources = profile["resources"]
    for kind in ("cpu", "memory"):
        limit, guarantee = resources.get(f"{kind}_limit"), resources.get(f"{kind}_guarantee")
        if limit is not None and guarantee is None:
            resources[f"{kind}_guarantee"] = limit
        elif guarantee is not None and limit is None:
            resources[f"{kind}_limit"] = guarantee
    if not resources:
        profile.pop("resources")


def _profile(
    entry: dict[str, Any], index: int, out: Migration, base: dict[str, Any], home: Any
) -> None:
    slug = slug_of(entry, index)
    where = f"singleuser.profileList[{index}]"
    profile: dict[str, Any] = {
        "slug": slug,
        "display_name": str(entry.get("display_name") or slug)[:80],
        "resources": dict(base),
    }
    if home is not None:
        profile["storage"] = {"home_size": home}
    if entry.get("description"):
        profile["description"] = str(entry["description"])[:1000]
    _apply_override(
        profile, dict(entry.get("kubespawner_override") or {}), f"{where}.kubespawner_override", out
    )
    for name, option in (entry.get("profile_options") or {}).items():
        choices = option.get("choices") or {}
        chosen = next(
            (k for k, c in choices.items() if c.get("default")), next(iter(choices), None)
        )
        if chosen is not None:
            override = dict(choices[chosen].get("kubespawner_override") or {})
            _apply_override(
                profile, override, f"{where}.profile_options.{name}.choices.{chosen}", out
            )
        others = sorted(k for k in choices if k != chosen)
        out.report.append(
            f"{where}.profile_options.{name}: LabHub courses have no options; used the choice "
            f"{chosen!r}"
            + (f", make a course per other choice ({', '.join(others)})" if others else "")
        )
    _complete_resources(profile)
    for key in sorted(
        set(entry)
        - {
            "display_name",
            "slug",
            "description",
            "kubespawner_override",
            "profile_options",
            "default",
        }
    ):
        out.report.append(f"{where}.{key}: no course profile equivalent")
    out.profiles[slug] = profile
