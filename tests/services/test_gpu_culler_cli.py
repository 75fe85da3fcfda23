"""The culler's command line and credentials: one-line errors, in-pod Kubernetes access."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_ext.adapters.k8s import gpu_pods as gpu_cull_k8s
from hub_ext.adapters.ldap.reference_lab import write_tls_files
from hub_ext.services.gpu_culler import main


def test_bad_options_end_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cull-every=0"]) == 2
    err = capsys.readouterr().err
    assert err == "labhub-gpu-culler: --cull-every must be at least 1 second, got 0\n"


def test_missing_hub_credentials_are_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main(["--namespace=default"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "labhub-gpu-culler: JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN must be set; "
        "run this as a JupyterHub service"
    ]


async def test_service_account_fallback_rereads_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hub services do not inherit KUBERNETES_SERVICE_HOST: the mounted account is used
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    (tmp_path / "token").write_text("first\n")
    ca = write_tls_files(tmp_path / "tls").ca_cert
    (tmp_path / "ca.crt").write_bytes(ca.read_bytes())
    (tmp_path / "namespace").write_text("labhub-prod\n")
    monkeypatch.setattr(gpu_cull_k8s, "SERVICE_ACCOUNT_DIR", tmp_path)
    assert gpu_cull_k8s.in_cluster_namespace() == "labhub-prod"
    api = await gpu_cull_k8s.kubernetes_client()
    async with api:
        conf = api.configuration
        assert conf.host == "https://kubernetes.default.svc"
        assert (await conf.auth_settings())["BearerToken"]["value"] == "Bearer first"
        (tmp_path / "token").write_text("rotated\n")
        assert (await conf.auth_settings())["BearerToken"]["value"] == "Bearer rotated"
