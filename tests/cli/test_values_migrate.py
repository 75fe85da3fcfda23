"""``labhub values migrate``: Zero to JupyterHub values files, written for these tests in the
shapes Z2JH's documentation describes, become LabHub values that lint and render with the real
helm and course profiles that validate against the rendered policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_ext.cli import main

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "labhub"
Z2JH = Path(__file__).parent / "z2jh"
sys.path.insert(0, str(ROOT / "tests" / "helm"))
from chart_render import run_helm  # noqa: E402


def _migrate(name: str, out: Path) -> tuple[dict[str, Any], str]:
    assert main(["values", "migrate", str(Z2JH / name), "--out", str(out)]) == 0
    values = yaml.safe_load((out / "values.yaml").read_text())
    return values, (out / "migration-report.txt").read_text()


def _render(out: Path) -> list[dict[str, Any]]:
    lint = run_helm("lint", str(CHART), "-f", str(out / "values.yaml"))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    result = run_helm(
        "template", "gpulab", str(CHART), "-n", "labhub", "-f", str(out / "values.yaml")
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _validate_profiles(out: Path, docs: list[dict[str, Any]]) -> list[str]:
    hub_cm = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gpulab-labhub-hub"
    )
    (out / "rendered-policy.yaml").write_text(hub_cm["data"]["policy.yaml"])
    cmd = [sys.executable, "-m", "hub_ext", "profiles", "validate", str(out / "profiles")]
    cmd += ["--policy", str(out / "rendered-policy.yaml"), "--format", "json"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    valid: list[str] = yaml.safe_load(result.stdout)["valid"]
    return valid


def test_ldap_profile_list_with_options_and_storage(tmp_path: Path) -> None:
    out = tmp_path / "ldap"
    values, report = _migrate("ldap-profiles.yaml", out)
    assert values["labhub"]["authenticator"] == "ldap"
    assert values["labhub"]["ldap"]["servers"] == [{"url": "ldaps://ldap.example.edu:636"}]
    assert values["hub"]["adminUsers"] == ["prof.mueller"]
    assert values["hub"]["db"] == {"upgrade": True, "pvc": {"storage": "2Gi"}}
    assert values["cull"] == {"timeout": 1800, "every": 300}
    docs = _render(out)
    profiles_cm = next(d for d in docs if d["metadata"]["name"] == "gpulab-labhub-profiles")
    slugs = ["datascience-environment", "minimal-environment", "ml-gpu"]
    assert sorted(k.removesuffix(".yaml") for k in profiles_cm["data"]) == slugs
    assert sorted(_validate_profiles(out, docs)) == slugs
    ml = yaml.safe_load((out / "profiles" / "ml-gpu" / "profile.yaml").read_text())
    assert ml["image"] == "registry.lab.example.edu/courses/ml-101:2026.11"  # the default choice
    assert ml["gpu"] == {"slice_types": ["1g.10gb"]}
    assert ml["env"] == {"MPLBACKEND": "Agg"}
    assert ml["kubespawner_override"] == {
        "node_selector": {"nvidia.com/gpu.product": "A100-SXM4-40GB"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    data = yaml.safe_load(
        (out / "profiles" / "datascience-environment" / "profile.yaml").read_text()
    )
    assert data["resources"] == {
        "cpu_guarantee": 0.5,
        "cpu_limit": 4,
        "memory_guarantee": "1G",
        "memory_limit": "8G",
    }
    assert data["storage"] == {"home_size": "20Gi"}
    minimal = yaml.safe_load(
        (out / "profiles" / "minimal-environment" / "profile.yaml").read_text()
    )
    assert minimal["image"] == "quay.io/jupyter/base-notebook:2024-05-27"
    for expected in (
        "proxy.https (enabled, type, letsencrypt.contactEmail, hosts): no LabHub equivalent",
        "singleuser.storage.extraVolumes",
        "profile_options.image: LabHub courses have no options; used the choice 'pytorch', "
        "make a course per other choice (tensorflow)",
        "kubespawner_override.privileged: not carried over:",
        "hub.config.LDAPAuthenticator.lookup_dn",
    ):
        assert expected in report, (expected, report)
    assert not (out / "secrets.yaml").exists()


def test_oidc_postgres_manual_https(tmp_path: Path) -> None:
    out = tmp_path / "oidc"
    values, report = _migrate("oidc-postgres.yaml", out)
    oidc = values["labhub"]["oidc"]
    assert values["labhub"]["authenticator"] == "oidc"
    assert oidc["clientId"] == "labhub" and oidc["groupsClaim"] == "groups"
    assert oidc["clientSecret"] == {"secretName": "labhub-oidc-client"}
    assert values["hub"]["db"]["type"] == "postgres"
    assert values["hub"]["db"]["passwordSecret"]["name"] == "labhub-hub-db-password"
    assert values["hub"]["config"] == {"JupyterHub": {"admin_access": True}}
    assert values["hub"]["extraEnv"] == {"TZ": "Europe/Berlin"}
    assert "not-a-real-secret" not in (out / "values.yaml").read_text()
    secrets = list(yaml.safe_load_all((out / "secrets.yaml").read_text()))
    assert {s["metadata"]["name"]: s["stringData"] for s in secrets} == {
        "labhub-hub-db-password": {"password": "also-not-real"},
        "labhub-oidc-client": {"client-secret": "not-a-real-secret"},
    }
    assert (out / "secrets.yaml").stat().st_mode & 0o077 == 0
    docs = _render(out)
    assert sorted(_validate_profiles(out, docs)) == ["small", "whole-gpu"]
    gpu = yaml.safe_load((out / "profiles" / "whole-gpu" / "profile.yaml").read_text())
    assert gpu["gpu"] == {"slice_types": ["7g.80gb", "7g.40gb"]}
    assert "a whole GPU became the full-GPU MIG slices" in report
    assert "proxy.https (enabled, type, manual.key, manual.cert)" in report
    assert "prePuller (continuous.enabled)" in report
    assert "scheduling.userPlaceholder (enabled)" in report


def test_values_without_profile_list_give_one_default_course(tmp_path: Path) -> None:
    source = tmp_path / "plain.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "hub": {
                    "config": {
                        "JupyterHub": {"authenticator_class": "ldap"},
                        "LDAPAuthenticator": {
                            "server_address": "ldap.example.edu",
                            "bind_dn_template": "uid={username},dc=x",
                        },
                    }
                },
                "singleuser": {
                    "image": {"name": "quay.io/jupyter/minimal-notebook", "tag": "2025-03-17"},
                    "memory": {"limit": "2G"},
                },
            }
        )
    )
    out = tmp_path / "out"
    assert main(["values", "migrate", str(source), "--out", str(out)]) == 0
    docs = _render(out)
    assert _validate_profiles(out, docs) == ["default"]
    profile = yaml.safe_load((out / "profiles" / "default" / "profile.yaml").read_text())
    assert profile["resources"] == {"memory_guarantee": "2G", "memory_limit": "2G"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a list\n", "must hold a mapping"), ("key: [unclosed\n", "cannot read")],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "bad.yaml"
    source.write_text(text)
    assert main(["values", "migrate", str(source), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_refuses_to_overwrite_a_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["values", "migrate", str(Z2JH / "oidc-postgres.yaml"), "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_the_guide_lists_every_setting_the_tool_knows() -> None:
    from hub_ext.cli.z2jh_keys import NO_EQUIVALENT, SAME

    guide = (ROOT / "docs" / "how-to" / "move-from-zero-to-jupyterhub.md").read_text()
    for key in (*SAME, *NO_EQUIVALENT):
        last = key.rsplit(".", 1)[-1]
        assert f"`{key}" in guide or f"`{last}`" in guide, key
