"""Pod Security admission and ServiceAccount admission of the development cluster, and the
ServiceAccount volume as a running pod sees it; with the real kubectl and kubernetes_asyncio."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import api_testing
import pytest
from api_testing import Api, client_for, kubectl
from devcluster_helpers import get_pod, pod_manifest, two_node_config
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from support import eventually

from hub_ext.devcluster.apiserver import write_kubeconfig
from hub_ext.devcluster.cluster import DevCluster

api = api_testing.api  # the fixture: a running API server and an admin client
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RESTRICTED_MESSAGE = (
    'pods "root" is forbidden: violates PodSecurity "restricted:latest": '
    'privileged (container "c" must not set securityContext.privileged=true), '
    "allowPrivilegeEscalation != false "
    '(container "c" must set securityContext.allowPrivilegeEscalation=false), '
    "unrestricted capabilities "
    '(container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def privileged_pod(name: str = "root") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }


def restricted_pod(name: str) -> dict[str, Any]:
    security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": security}]},
    }


async def labelled_namespace(api: Api, name: str, **modes: str) -> None:
    labels = {f"pod-security.kubernetes.io/{m}": level for m, level in modes.items()}
    labels.update({f"pod-security.kubernetes.io/{m}-version": "latest" for m in modes})
    await api.core.create_namespace({"metadata": {"name": name, "labels": labels}})


async def test_a_privileged_pod_in_a_restricted_namespace_is_refused(
    api: Api, tmp_path: Path
) -> None:
    await labelled_namespace(api, "course", enforce="restricted")
    with pytest.raises(ApiException) as refused:
        await api.core.create_namespaced_pod("course", privileged_pod())
    body = json.loads(refused.value.body)
    assert refused.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == RESTRICTED_MESSAGE
    manifest = tmp_path / "root.json"
    manifest.write_text(json.dumps(privileged_pod()))
    text = await kubectl(api.kubeconfig, "apply", "-n", "course", "-f", str(manifest), check=False)
    assert f'Error from server (Forbidden): error when creating "{manifest}": ' in text
    assert RESTRICTED_MESSAGE in text
    created = await api.core.create_namespaced_pod("course", restricted_pod("ok"))
    assert created.metadata.name == "ok"
    pods = await api.core.list_namespaced_pod("course")
    assert [p.metadata.name for p in pods.items] == ["ok"]  # the refused pod was not stored


async def test_baseline_allows_what_restricted_refuses(api: Api) -> None:
    await labelled_namespace(api, "base", enforce="baseline")
    assert (await api.core.create_namespaced_pod("base", restricted_pod("plain"))).metadata.name
    plain = privileged_pod("plain-root")
    plain["spec"]["containers"][0].pop("securityContext")
    assert (await api.core.create_namespaced_pod("base", plain)).metadata.name == "plain-root"
    host = privileged_pod("host")
    host["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    host["spec"].update(hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    with pytest.raises(ApiException) as refused:
        await api.core.create_namespaced_pod("base", host)
    assert json.loads(refused.value.body)["message"] == (
        'pods "host" is forbidden: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "c" must not include "SYS_ADMIN" in '
        "securityContext.capabilities.add), host namespaces (hostNetwork=true), "
        'hostPath volumes (volume "root")'
    )


async def test_warn_mode_answers_with_a_warning_header(api: Api, tmp_path: Path) -> None:
    await labelled_namespace(api, "warned", warn="baseline")
    manifest = tmp_path / "root.json"
    manifest.write_text(json.dumps(privileged_pod()))
    text = await kubectl(api.kubeconfig, "create", "-n", "warned", "-f", str(manifest))
    assert (
        'Warning: would violate PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    ) in text
    assert "pod/root created" in text


async def test_service_account_admission(api: Api) -> None:
    created = await api.core.create_namespaced_pod("default", restricted_pod("mounted"))
    assert created.spec.service_account_name == "default"
    volume = next(v for v in created.spec.volumes if v.name.startswith("kube-api-access-"))
    sources = volume.projected.sources
    assert sources[0].service_account_token.path == "token"
    assert sources[1].config_map.name == "kube-root-ca.crt"
    assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
    mount = created.spec.containers[0].volume_mounts[0]
    assert (mount.name, mount.mount_path, mount.read_only) == (volume.name, TOKEN_DIR, True)
    unmounted = restricted_pod("unmounted")
    unmounted["spec"]["automountServiceAccountToken"] = False
    created = await api.core.create_namespaced_pod("default", unmounted)
    assert not created.spec.volumes and not created.spec.containers[0].volume_mounts
    await api.core.create_namespaced_service_account(
        "default", {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}
    )
    quiet = restricted_pod("quiet")
    quiet["spec"]["serviceAccountName"] = "quiet"
    assert not (await api.core.create_namespaced_pod("default", quiet)).spec.volumes
    lost = restricted_pod("lost")
    lost["spec"]["serviceAccountName"] = "nobody"
    with pytest.raises(ApiException) as refused:
        await api.core.create_namespaced_pod("default", lost)
    assert json.loads(refused.value.body)["message"] == (
        'pods "lost" is forbidden: error looking up service account default/nobody: '
        'serviceaccount "nobody" not found'
    )


READER = f"""
import os, pathlib
d = pathlib.Path("{TOKEN_DIR}")
print("NS=" + (d / "namespace").read_text())
print("CA=" + str((d / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")))
print("HOST=" + os.environ["KUBERNETES_SERVICE_HOST"] + ":" + os.environ["KUBERNETES_SERVICE_PORT"])
print("TOKEN=" + (d / "token").read_text())
"""


async def test_a_pod_reads_its_service_account_token_and_uses_it(tmp_path: Path) -> None:
    async with DevCluster(two_node_config(), tmp_path / "state") as cluster:
        admin = await client_for(cluster.kubeconfig)
        async with admin:
            core = CoreV1Api(admin)
            await core.create_namespaced_pod(
                "default", pod_manifest("reader", [sys.executable, "-c", READER])
            )

            async def finished() -> dict[str, Any] | None:
                found = await get_pod(core, "reader")
                phase = ((found or {}).get("status") or {}).get("phase")
                return found if phase in ("Succeeded", "Failed") else None

            pod = await eventually(finished, 30, "the reader pod to finish")
            log = await core.read_namespaced_pod_log("reader", "default")
        assert pod["status"]["phase"] == "Succeeded", log
        lines = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
        assert lines["NS"] == "default" and lines["CA"] == "True"
        assert lines["HOST"] == cluster.api.secure_url.removeprefix("https://")
        config = write_kubeconfig(
            tmp_path / "pod-kubeconfig",
            cluster.api.secure_url,
            cluster.api.gate.ca_pem,
            lines["TOKEN"],
            "default",
            "reader",
        )
        whoami = json.loads(await kubectl(config, "auth", "whoami", "-o", "json"))
        info = whoami["status"]["userInfo"]
        assert info["username"] == "system:serviceaccount:default:default"
        assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["reader"]
        denied = await kubectl(config, "get", "pods", check=False)
        assert (
            'pods is forbidden: User "system:serviceaccount:default:default" cannot list '
            'resource "pods" in API group "" in the namespace "default"'
        ) in denied
