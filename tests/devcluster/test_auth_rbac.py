"""Authentication, RBAC, the review APIs, impersonation and the audit log of the API server,
with the real kubectl (over the HTTPS port) and with kubernetes_asyncio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import api_testing
import pytest
from api_testing import Api, client_for, kubectl, pod
from kubernetes_asyncio.client import (
    AuthenticationV1Api,
    AuthorizationV1Api,
    CoreV1Api,
    RbacAuthorizationV1Api,
)
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.apiserver import ApiServer, write_kubeconfig

SA = "system:serviceaccount:course:grader"
api = api_testing.api  # the fixture: a running API server and an admin client


async def limited_account(setup: Api) -> None:
    """Namespace ``course``, ServiceAccount ``grader`` that may only read pods there."""
    core, rbac = setup.core, RbacAuthorizationV1Api(setup.client)
    await core.create_namespace({"metadata": {"name": "course"}})
    await core.create_namespaced_service_account("course", {"metadata": {"name": "grader"}})
    await rbac.create_namespaced_role(
        "course",
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    await rbac.create_namespaced_role_binding(
        "course",
        {
            "metadata": {"name": "grader-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "grader", "namespace": "course"}],
        },
    )


async def token_for(setup: Api, name: str = "grader", namespace: str = "course") -> str:
    answer = await CoreV1Api(setup.client).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return str(answer.status.token)


def account_kubeconfig(setup: Api, path: Path, token: str) -> Path:
    return write_kubeconfig(
        path, setup.server.secure_url, setup.server.gate.ca_pem, token, "course", "grader"
    )


def status_of(exc: ApiException) -> dict[str, Any]:
    return dict(json.loads(exc.body))


async def test_a_service_account_limited_by_a_role_gets_the_real_403(
    api: Api, tmp_path: Path
) -> None:
    await limited_account(api)
    await api.core.create_namespaced_pod("course", pod("x"))
    config = account_kubeconfig(api, tmp_path / "grader", await token_for(api))
    async with await client_for(config) as client:
        core = CoreV1Api(client)
        assert (await core.read_namespaced_pod("x", "course")).metadata.name == "x"
        with pytest.raises(ApiException) as patch:
            await core.patch_namespaced_pod("x", "course", {"metadata": {"labels": {"a": "b"}}})
        body = status_of(patch.value)
        assert patch.value.status == 403
        assert body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'pods "x" is forbidden: User "{SA}" cannot patch resource "pods" in API '
            'group "" in the namespace "course"',
            "reason": "Forbidden",
            "details": {"name": "x", "kind": "pods"},
            "code": 403,
        }
        with pytest.raises(ApiException) as watch:
            await core.list_namespaced_pod("course", watch=True, timeout_seconds=1)
        assert status_of(watch.value)["message"] == (
            f'pods is forbidden: User "{SA}" cannot watch resource "pods" in API group "" in '
            'the namespace "course"'
        )
        with pytest.raises(ApiException) as nodes:
            await core.list_node()
        assert status_of(nodes.value)["message"] == (
            f'nodes is forbidden: User "{SA}" cannot list resource "nodes" in API group "" at '
            "the cluster scope"
        )
        with pytest.raises(ApiException) as log:
            await core.read_namespaced_pod_log("x", "course")
        assert 'cannot get resource "pods/log" in API group ""' in status_of(log.value)["message"]
    text = await kubectl(config, "delete", "pod", "x", check=False)
    assert (
        f'Error from server (Forbidden): pods "x" is forbidden: User "{SA}" cannot delete '
        'resource "pods" in API group "" in the namespace "course"'
    ) in text
    assert "x " in await kubectl(config, "get", "pods")


async def test_rbac_rules_resource_names_subresources_and_wildcards(api: Api) -> None:
    await limited_account(api)
    rbac = RbacAuthorizationV1Api(api.client)
    await rbac.create_cluster_role(
        {
            "metadata": {"name": "status-writer"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["settings"],
                    "verbs": ["*"],
                },
                {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["update"]},
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            ],
        }
    )
    await rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "grader-status"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "status-writer",
            },
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:course"}],
        }
    )
    authz = AuthorizationV1Api(api.client)

    async def can(verb: str, resource: str, sub: str = "", name: str = "", group: str = "") -> bool:
        attrs = {"namespace": "course", "verb": verb, "resource": resource, "group": group}
        attrs.update(subresource=sub, name=name)
        review = await authz.create_subject_access_review(
            {
                "spec": {
                    "user": SA,
                    "groups": ["system:serviceaccounts:course"],
                    "resourceAttributes": attrs,
                }
            }
        )
        return bool(review.status.allowed)

    assert await can("patch", "pods", "status")
    assert not await can("patch", "pods")
    assert not await can("update", "pods", "status")
    assert await can("delete", "configmaps", name="settings")
    assert not await can("delete", "configmaps", name="other")
    assert not await can("list", "configmaps")  # a named rule never grants a list
    assert await can("update", "deployments", "scale", group="apps")
    assert await can("get", "pods")  # from the Role binding to the ServiceAccount
    assert not await can("deletecollection", "pods")
    path = await authz.create_subject_access_review(
        {"spec": {"user": SA, "groups": ["system:serviceaccounts:course"],
                  "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}
    )  # fmt: skip
    assert path.status.allowed


async def test_kubectl_auth_can_i_whoami_and_create_token(api: Api, tmp_path: Path) -> None:
    await limited_account(api)
    kc = api.kubeconfig
    assert (await kubectl(kc, "auth", "can-i", "create", "pods")).strip() == "yes"
    answer = await kubectl(kc, "auth", "can-i", "list", "pods", "-n", "course", "--as", SA)
    assert answer.strip() == "yes"
    answer = await kubectl(
        kc, "auth", "can-i", "patch", "pods", "-n", "course", "--as", SA, check=False
    )
    assert answer.strip() == "no"
    listing = await kubectl(kc, "auth", "can-i", "--list", "-n", "course", "--as", SA)
    assert "pods " in listing and "[get list]" in listing
    token = (await kubectl(kc, "create", "token", "grader", "-n", "course")).strip()
    config = account_kubeconfig(api, tmp_path / "grader", token)
    whoami = await kubectl(config, "auth", "whoami", "-o", "json")
    assert json.loads(whoami)["status"]["userInfo"]["username"] == SA
    assert (await kubectl(config, "auth", "can-i", "get", "pods")).strip() == "yes"
    short = await kubectl(
        kc, "create", "token", "grader", "-n", "course", "--duration", "1m", check=False
    )
    assert "may not specify a duration less than 10 minutes" in short
    missing = await kubectl(kc, "create", "token", "nobody", "-n", "course", check=False)
    assert 'serviceaccounts "nobody" not found' in missing


async def test_kubectl_create_namespace_and_other_protobuf_bodies(api: Api) -> None:
    kc = api.kubeconfig
    assert "namespace/lab created" in await kubectl(kc, "create", "namespace", "lab")
    assert "configmap/c created" in await kubectl(
        kc, "create", "configmap", "c", "-n", "lab", "--from-literal=a=1"
    )
    assert "secret/s created" in await kubectl(
        kc, "create", "secret", "generic", "s", "-n", "lab", "--from-literal=b=2"
    )
    assert "serviceaccount/bot created" in await kubectl(kc, "create", "sa", "bot", "-n", "lab")
    assert "created" in await kubectl(
        kc, "create", "role", "r", "-n", "lab", "--verb=get", "--resource=pods"
    )
    assert "created" in await kubectl(
        kc, "create", "rolebinding", "rb", "-n", "lab", "--role=r", "--serviceaccount=lab:bot"
    )
    cm = await api.core.read_namespaced_config_map("c", "lab")
    secret = await api.core.read_namespaced_secret("s", "lab")
    assert cm.data == {"a": "1"} and secret.data == {"b": "Mg=="}
    answer = await kubectl(
        kc, "auth", "can-i", "get", "pods", "-n", "lab", "--as", "system:serviceaccount:lab:bot"
    )
    assert answer.strip() == "yes"
    # a new namespace gets its default ServiceAccount and the cluster's CA
    names = {s.metadata.name for s in (await api.core.list_namespaced_service_account("lab")).items}
    assert names == {"default", "bot"}
    root = await api.core.read_namespaced_config_map("kube-root-ca.crt", "lab")
    assert root.data["ca.crt"] == api.server.gate.ca_pem


async def test_impersonation_is_checked(api: Api, tmp_path: Path) -> None:
    await limited_account(api)
    kc = api.kubeconfig
    text = await kubectl(kc, "delete", "pod", "y", "-n", "course", "--as", SA, check=False)
    assert f'pods "y" is forbidden: User "{SA}" cannot delete resource "pods"' in text
    text = await kubectl(kc, "get", "nodes", "--as", "alice", "--as-group", "teachers", check=False)
    assert 'User "alice" cannot list resource "nodes" in API group "" at the cluster scope' in text
    config = account_kubeconfig(api, tmp_path / "grader", await token_for(api))
    text = await kubectl(config, "get", "pods", "--as", "alice", check=False)
    assert (
        f'users "alice" is forbidden: User "{SA}" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    ) in text
    rbac = RbacAuthorizationV1Api(api.client)
    await rbac.create_cluster_role(
        {
            "metadata": {"name": "impersonate-alice"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                       "resourceNames": ["alice"]}],
        }
    )  # fmt: skip
    await rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "grader-as-alice"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "impersonate-alice"},
            "subjects": [{"kind": "ServiceAccount", "name": "grader", "namespace": "course"}],
        }
    )  # fmt: skip
    whoami = json.loads(await kubectl(config, "auth", "whoami", "--as", "alice", "-o", "json"))
    assert whoami["status"]["userInfo"] == {
        "username": "alice",
        "groups": ["system:authenticated"],
    }
    text = await kubectl(config, "get", "pods", "--as", "alice", "--as-group", "x", check=False)
    assert 'groups "x" is forbidden' in text and 'cannot impersonate resource "groups"' in text


async def test_impersonation_through_kubernetes_asyncio(api: Api) -> None:
    await limited_account(api)
    async with await client_for(api.kubeconfig) as client:
        client.set_default_header("Impersonate-User", SA)
        core = CoreV1Api(client)
        assert (await core.list_namespaced_pod("course")).items == []
        with pytest.raises(ApiException) as denied:
            await core.create_namespaced_pod("course", pod("z"))
    assert status_of(denied.value)["message"] == (
        f'pods is forbidden: User "{SA}" cannot create resource "pods" in API group "" in the '
        'namespace "course"'
    )


async def test_tokens_expire_and_die_with_their_account(api: Api) -> None:
    await limited_account(api)
    token = await token_for(api)
    review = await AuthenticationV1Api(api.client).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated and review.status.user.username == SA
    await api.core.delete_namespaced_service_account("grader", "course")
    await api.core.create_namespaced_service_account("course", {"metadata": {"name": "grader"}})
    config = write_kubeconfig(
        api.kubeconfig.parent / "old", api.server.secure_url, api.server.gate.ca_pem, token,
        "course", "grader",
    )  # fmt: skip
    async with await client_for(config) as client:
        with pytest.raises(ApiException) as old:
            await CoreV1Api(client).list_namespaced_pod("course")
    assert old.value.status == 401 and status_of(old.value)["message"] == "Unauthorized"
    signer = api.server.gate.signer
    expired, _ = signer.issue(
        "course", "grader", "uid", ("https://kubernetes.default.svc",), 600, now=0
    )
    assert signer.verify(expired) is None


async def test_anonymous_requests_see_discovery_only(api: Api) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for path, code in (("/version", 200), ("/healthz", 200), ("/api/v1/pods", 403)):
            async with session.get(api.server.secure_url + path, ssl=False) as resp:
                assert resp.status == code, (path, await resp.text())
        async with session.get(api.server.secure_url + "/api", ssl=False) as resp:
            body = await resp.json()
        assert resp.status == 403
        assert body["message"] == 'forbidden: User "system:anonymous" cannot get path "/api"'


async def test_audit_log_has_one_line_per_request(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "state", audit_log=tmp_path / "audit.log")
    await server.start()
    try:
        kc = server.write_kubeconfig(tmp_path / "kubeconfig")
        await kubectl(kc, "create", "namespace", "audited")
        await kubectl(kc, "get", "pods", "-n", "audited", "--as", SA, check=False)
    finally:
        await server.stop()
    events = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    create = next(e for e in events if e["verb"] == "create" and "objectRef" in e)
    assert create["objectRef"] == {"resource": "namespaces"}
    assert create["user"]["username"] == "kubernetes-admin"
    assert "system:masters" in create["user"]["groups"]
    assert create["responseStatus"]["code"] == 201
    assert create["apiVersion"] == "audit.k8s.io/v1" and create["stage"] == "ResponseComplete"
    denied = next(e for e in events if e.get("impersonatedUser") and "objectRef" in e)
    assert denied["impersonatedUser"]["username"] == SA
    assert denied["objectRef"] == {"resource": "pods", "namespace": "audited"}
    assert denied["verb"] == "list" and denied["responseStatus"]["code"] == 403
    assert all(e["requestReceivedTimestamp"] <= e["stageTimestamp"] for e in events)


async def test_exec_over_websocket_needs_create_on_pods_exec(api: Api, tmp_path: Path) -> None:
    await limited_account(api)
    await api.core.create_namespaced_pod("course", pod("x"))
    config = account_kubeconfig(api, tmp_path / "grader", await token_for(api))
    refused = (
        f'pods "x" is forbidden: User "{SA}" cannot create resource "pods/exec" in API group "" '
        'in the namespace "course"'
    )
    assert refused in await kubectl(config, "exec", "x", "--", "true", check=False)
    rbac = RbacAuthorizationV1Api(api.client)
    role = {
        "metadata": {"name": "pod-reader"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]},
        ],
    }
    await rbac.replace_namespaced_role("pod-reader", "course", role)
    # the WebSocket upgrade is a GET, but get is not enough: Kubernetes checks create
    assert refused in await kubectl(config, "exec", "x", "--", "true", check=False)
    role["rules"][1]["verbs"] = ["create"]
    await rbac.replace_namespaced_role("pod-reader", "course", role)
    text = await kubectl(config, "exec", "x", "--", "true", check=False)
    # authorized: the answer is now the kubelet's, the pod's container has not started here
    assert "forbidden" not in text
    assert 'container "main" in pod "x" is waiting to start: ContainerCreating' in text, text
