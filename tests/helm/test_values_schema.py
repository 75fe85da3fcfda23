"""values.schema.yaml is the single source: JSON up to date, every value described, enforced."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_render import (
    CHART,
    CI_DIR,
    CI_VALUES,
    PREVIOUS_DIR,
    PREVIOUS_VALUES,
    ROOT,
    render,
    render_error,
)

GENERATOR = ROOT / "helm" / "tools" / "generate_schema.py"
sys.path.insert(0, str(GENERATOR.parent))
import generate_schema  # noqa: E402


def _schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}" if path else name)
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        yield from _walk(items, f"{path}[]")


def test_json_schema_is_generated_from_the_yaml() -> None:
    expected = generate_schema.render(generate_schema.load_schema())
    assert (CHART / "values.schema.json").read_text() == expected, (
        "values.schema.json is stale: run python helm/tools/generate_schema.py"
    )
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(_schema())


def test_every_value_has_a_description() -> None:
    missing = [p for p, node in _walk(_schema(), "") if p and not node.get("description")]
    assert not missing, missing


def test_every_default_value_is_in_the_schema() -> None:
    schema = _schema()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    described = {p for p, _ in _walk(schema, "")}
    open_maps = {
        p for p, n in _walk(schema, "") if n.get("additionalProperties") not in (False, None)
    }

    def leaves(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict) and node and path not in open_maps:
            for key, value in node.items():
                yield from leaves(value, f"{path}.{key}" if path else key)
        else:
            yield path

    assert [p for p in leaves(defaults, "") if p not in described] == []


def test_labhub_objects_reject_unknown_keys() -> None:
    for path, node in _walk(_schema(), ""):
        if path.startswith("labhub") and node.get("type") == "object" and node.get("properties"):
            assert node.get("additionalProperties") is False, path


@pytest.mark.parametrize("values", CI_VALUES)
def test_ci_values_validate(values: str) -> None:
    jsonschema.Draft7Validator(_schema()).validate(_merged(CI_DIR / values))


def _merged(path: Path) -> dict[str, Any]:
    def merge(base: Any, extra: Any) -> Any:
        if isinstance(base, dict) and isinstance(extra, dict):
            return {
                k: merge(base.get(k), extra[k]) if k in extra else base[k] for k in base | extra
            }
        return extra

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(defaults, yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("values", PREVIOUS_VALUES)
def test_previous_version_values_still_validate_and_render(values: str) -> None:
    jsonschema.Draft7Validator(_schema()).validate(_merged(PREVIOUS_DIR / values))
    docs = render(PREVIOUS_DIR / values)
    assert any(d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-hub") for d in docs)


def test_there_are_previous_version_values() -> None:
    assert len(PREVIOUS_VALUES) >= 3


def test_resource_names_and_selectors_are_stable_across_values() -> None:
    """Deployment selectors are immutable: the same release must keep them on upgrade."""
    old = render(PREVIOUS_DIR / "0.1.0-reference-lab.yaml")
    new = render("defaults-values.yaml")

    def selectors(docs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            d["metadata"]["name"]: d["spec"]["selector"] for d in docs if d["kind"] == "Deployment"
        }

    assert selectors(old) == selectors(new)
    pvc = next(d for d in new if d["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (("labhub.slices.strategy=everything",), "/labhub/slices/strategy"),
        (("labhub.admission.queueTimeout=soon",), "/labhub/admission/queueTimeout"),
        (("labhub.ldap.connectTimeout=fast",), "/labhub/ldap/connectTimeout"),
        (("labhub.profiles.colour=blue",), "colour"),
        (("labhub.ldap.servers[0].port=636",), "port"),
        (("labhub.unknown=1",), "unknown"),
        (("hub.image.tag=latest",), "/hub/image/tag"),
        (("singleuser.allowPrivilegeEscalation=true",), "/singleuser/allowPrivilegeEscalation"),
        (("labhub.ldap.servers[0].url=ldap-a.example.edu",), "/labhub/ldap/servers/0/url"),
        (("backup.keepDaily=0",), "/backup/keepDaily"),
    ],
)
def test_invalid_values_fail_naming_the_key(sets: tuple[str, ...], key: str) -> None:
    error = render_error("defaults-values.yaml", sets=sets)
    assert key in error, error


def test_chart_defaults_fail_naming_the_value_to_set() -> None:
    error = render_error(CHART / "values.yaml")
    assert "labhub.ldap.servers: list at least one LDAP server" in error, error
    assert "ldaps://" in error and "minItems" not in error, error


def test_missing_oidc_settings_fail_naming_the_key() -> None:
    error = render_error("defaults-values.yaml", sets=("labhub.authenticator=oidc",))
    assert "labhub.oidc.clientId: required when labhub.authenticator is oidc" in error, error


def test_missing_postgres_url_and_git_repo_fail_naming_the_key() -> None:
    error = render_error("defaults-values.yaml", sets=("hub.db.type=postgres",))
    assert "hub.db.url: set the PostgreSQL URL" in error, error
    error = render_error("defaults-values.yaml", sets=("labhub.profiles.source=git",))
    assert "labhub.profiles.git.repo: set the repository URL" in error, error


def test_template_checks_name_the_key_when_schema_passes() -> None:
    error = render_error(
        "defaults-values.yaml",
        sets=("labhub.ldap.userSearchBase=", "labhub.ldap.bindDnTemplate=null"),
    )
    assert "labhub.ldap.userSearchBase" in error, error
    error = render_error(
        "defaults-values.yaml",
        sets=(
            "labhub.oidc.clientSecret.secretName=",
            "labhub.authenticator=oidc",
            "labhub.oidc.clientId=x",
            "labhub.oidc.authorizeUrl=https://a",
            "labhub.oidc.tokenUrl=https://b",
            "labhub.oidc.userdataUrl=https://c",
        ),
    )
    assert "labhub.oidc.clientSecret.secretName" in error, error


def test_docs_reference_lists_every_value_with_its_default() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import labhub_chart_values
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    schema = labhub_chart_values.load_schema()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = {
        key: (default, text) for key, _, default, text in labhub_chart_values.rows(schema, defaults)
    }
    assert set(documented) == {p for p, _ in _walk(_schema(), "") if p and not p.endswith("[]")}
    assert documented["labhub.ldap.connectTimeout"][0] == 3
    assert documented["backup.keepDaily"][0] == 7
    assert all(text for _, text in documented.values())
    page = (ROOT / "docs" / "reference" / "chart-values.md").read_text()
    assert page.startswith("# ") and "{labhub-chart-values}" in page


KEYWORDS = {
    "$schema",
    "title",
    "description",
    "type",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "pattern",
    "minItems",
    "maxItems",
    "not",
    "propertyNames",
    "allOf",
    "anyOf",
    "if",
    "then",
}


def test_schema_uses_only_known_keywords() -> None:
    """A typo or a YAML slip (an unquoted comma in a flow mapping) shows up as an odd keyword."""
    odd: list[str] = []

    def visit(node: Any, path: str) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, path)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    for name, child in value.items():
                        visit(child, f"{path}.{name}")
                    continue
                if key not in KEYWORDS:
                    odd.append(f"{path}: {key!r}")
                visit(value, path)

    visit(_schema(), "")
    assert odd == []
