"""The kubelet as a real one behaves: volumes at their paths, restarts, probes, init containers,
exec and logs, checked with the real kubectl and with kubernetes_asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from devcluster_helpers import KUBECTL, get_pod, kubectl
from kubernetes_asyncio.client import Configuration, CoreV1Api
from kubernetes_asyncio.stream import WsApiClient
from support import eventually

from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.devcluster.informer import api_client, request

PY = sys.executable
CONFIG = "/usr/local/etc/jupyterhub/jupyterhub_config.py"


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[DevCluster]:
    allowed = tmp_path / "datasets"
    allowed.mkdir()
    (allowed / "readme.txt").write_text("shared data")
    config = parse_cluster_config(
        {
            "name": "kubelet-test",
            "nodes": [{"name": "node-1", "zone": "room-a", "cpu": 8, "memory": "16Gi"}],
            "kubelet": {"crashLoopBackOffSeconds": 0.5, "allowedHostPaths": [str(allowed)]},
        }
    )
    options = DevClusterOptions(heartbeat_seconds=0.5)
    async with DevCluster(config, tmp_path / "state", options) as running:
        yield running


@pytest_asyncio.fixture
async def core(cluster: DevCluster) -> AsyncIterator[CoreV1Api]:
    async with api_client(cluster.api.url) as client:
        yield CoreV1Api(client)


async def apply(cluster: DevCluster, *objects: dict[str, Any]) -> None:
    """``kubectl apply -f -`` with the objects."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    body = "\n---\n".join(json.dumps(obj) for obj in objects).encode()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "apply",
        "-f",
        "-",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(body)
    assert proc.returncode == 0, out.decode()


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "example.org/any:1",
        "command": [PY, "-c", script],
    }
    for key in (
        "volumeMounts",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "ports",
        "lifecycle",
    ):
        if key in spec:
            container[key] = spec.pop(key)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "restartPolicy": "Never", **spec},
    }


async def status_of(core: CoreV1Api, name: str) -> dict[str, Any]:
    found = await get_pod(core, name)
    return (found or {}).get("status") or {}


async def phase(core: CoreV1Api, name: str, *phases: str) -> dict[str, Any] | None:
    status = await status_of(core, name)
    return status if status.get("phase") in phases else None


async def events(core: CoreV1Api, name: str) -> list[str]:
    found = await request(core.list_namespaced_event("default", _preload_content=False))
    return [
        f"{e['reason']}: {e['message']}"
        for e in found["items"]
        if e["involvedObject"].get("name") == name
    ]


READ_FILES = (
    "import os, sys\n"
    "for path in sys.argv[1:]:\n"
    "    print(path, oct(os.stat(path).st_mode & 0o777), open(path).read().strip())\n"
    "try:\n"
    "    open('/etc/lab/secret/token', 'w')\n"
    "except OSError as exc:\n"
    "    print('write', exc.strerror)\n"
)


async def test_volumes_appear_at_their_paths(cluster: DevCluster, core: CoreV1Api) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hub-config"},
        "data": {"jupyterhub_config.py": "c.JupyterHub.port = 8081", "other": "x"},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hub-secret"},
        "stringData": {"proxy.token": "s3cret", "unused": "no"},
    }
    volumes = [
        {"name": "config", "configMap": {"name": "hub-config"}},
        {
            "name": "secret",
            "secret": {
                "secretName": "hub-secret",
                "defaultMode": 0o400,
                "items": [{"key": "proxy.token", "path": "token"}],
            },
        },
        {
            "name": "projected",
            "projected": {
                "defaultMode": 0o440,
                "sources": [
                    {
                        "configMap": {
                            "name": "hub-config",
                            "items": [{"key": "other", "path": "cm/other", "mode": 0o600}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
                        }
                    },
                ],
            },
        },
        {"name": "data", "hostPath": {"path": str(cluster.state_dir.parent / "datasets")}},
    ]
    mounts = [
        {"name": "config", "mountPath": CONFIG, "subPath": "jupyterhub_config.py"},
        {"name": "secret", "mountPath": "/etc/lab/secret", "readOnly": True},
        {"name": "projected", "mountPath": "/etc/lab/projected"},
        {"name": "data", "mountPath": "/srv/datasets", "readOnly": True},
    ]
    files = [
        CONFIG,
        "/etc/lab/secret/token",
        "/etc/lab/projected/cm/other",
        "/etc/lab/projected/name",
        "/srv/datasets/readme.txt",
    ]
    body = pod("reader", READ_FILES, volumes=volumes, volumeMounts=mounts)
    body["spec"]["containers"][0]["args"] = files
    await apply(cluster, config_map, secret, body)
    await eventually(
        lambda: phase(core, "reader", "Succeeded", "Failed"), timeout=30, what="reader"
    )
    logs = (await kubectl(cluster.kubeconfig, "logs", "reader")).splitlines()
    assert logs == [
        f"{CONFIG} 0o644 c.JupyterHub.port = 8081",
        "/etc/lab/secret/token 0o400 s3cret",
        "/etc/lab/projected/cm/other 0o600 x",
        "/etc/lab/projected/name 0o440 reader",
        "/srv/datasets/readme.txt 0o644 shared data",
        "write Read-only file system",
    ]
    assert not Path(CONFIG).exists() and not Path("/etc/lab").exists()  # the host is unchanged


async def test_a_refused_or_missing_volume_is_a_mount_event(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    host = pod(
        "host",
        "pass",
        volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}],
        volumeMounts=[{"name": "etc", "mountPath": "/host-etc"}],
    )
    token = {
        "name": "token",
        "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
    }
    account = pod(
        "account",
        "pass",
        serviceAccountName="leaving",
        schedulingGates=[{"name": "example.org/hold"}],
        volumes=[token],
        volumeMounts=[{"name": "token", "mountPath": "/var/run/secrets/x"}],
    )
    leaving = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "leaving"}}
    await apply(cluster, leaving)
    await apply(cluster, host, account)
    # the account goes away before the pod reaches its kubelet: TokenRequest answers 404
    await core.delete_namespaced_service_account("leaving", "default")
    await core.patch_namespaced_pod(
        "account", "default", [{"op": "remove", "path": "/spec/schedulingGates"}]
    )

    async def refused() -> list[str] | None:
        found = await events(core, "host") + await events(core, "account")
        return found if len([e for e in found if e.startswith("FailedMount")]) >= 2 else None

    found = await eventually(refused, timeout=20, what="FailedMount events")
    assert any(
        "hostPath '/etc' is not allowed" in e and "kubelet.allowedHostPaths" in e for e in found
    )
    assert any(
        'failed to fetch token for ServiceAccount "leaving"' in e
        and '404: serviceaccounts "leaving" not found' in e
        for e in found
    )
    assert (await status_of(core, "host"))["phase"] == "Pending"


async def test_init_containers_run_in_order_then_the_containers(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    def step(name: str, word: str) -> dict[str, Any]:
        write = f"open('/srv/work/steps', 'a').write('{word} ')"
        return {
            "name": name,
            "image": "x",
            "command": [PY, "-c", write],
            "volumeMounts": [{"name": "work", "mountPath": "/srv/work"}],
        }

    body = pod(
        "ordered",
        "print(open('/srv/work/steps').read() + 'main')",
        volumes=[{"name": "work", "emptyDir": {}}],
        volumeMounts=[{"name": "work", "mountPath": "/srv/work"}],
        initContainers=[step("first", "one"), step("second", "two")],
    )
    await request(core.create_namespaced_pod("default", body, _preload_content=False))
    status = await eventually(
        lambda: phase(core, "ordered", "Succeeded", "Failed"), timeout=30, what="ordered"
    )
    assert await kubectl(cluster.kubeconfig, "logs", "ordered", "-c", "main") == "one two main\n"
    inits = status["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in inits] == [
        ("first", "Completed"),
        ("second", "Completed"),
    ]
    assert status["phase"] == "Succeeded"
    failing = pod(
        "bad-init",
        "print('never')",
        initContainers=[{**step("first", "one"), "command": [PY, "-c", "raise SystemExit(1)"]}],
    )
    await request(core.create_namespaced_pod("default", failing, _preload_content=False))
    status = await eventually(lambda: phase(core, "bad-init", "Failed"), timeout=30, what="failed")
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    listing = await kubectl(cluster.kubeconfig, "get", "pod", "bad-init", "--no-headers")
    assert listing.split()[:3] == ["bad-init", "0/1", "Init:Error"]


CRASH = "import os; print('attempt', flush=True); raise SystemExit(2)"


async def test_a_crashing_container_restarts_with_back_off(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    await apply(cluster, pod("crasher", CRASH, restartPolicy="Always"))

    async def restarted() -> dict[str, Any] | None:
        statuses = (await status_of(core, "crasher")).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 3 else None

    container = await eventually(restarted, timeout=60, what="three restarts")
    assert container["lastState"]["terminated"]["exitCode"] == 2
    assert (await status_of(core, "crasher"))["phase"] == "Running"
    found = await events(core, "crasher")
    assert any(
        e.startswith("BackOff: Back-off restarting failed container main in pod crasher_default(")
        for e in found
    )
    previous = await kubectl(cluster.kubeconfig, "logs", "crasher", "--previous")
    assert previous == "attempt\n"
    listing = await kubectl(cluster.kubeconfig, "get", "pod", "crasher")
    assert "CrashLoopBackOff" in listing or "Error" in listing or "Running" in listing
    log = await core.read_namespaced_pod_log("crasher", "default", previous=True, timestamps=True)
    assert log.endswith(" attempt\n") and log[:4].isdigit()


SERVE_LATER = (
    "import http.server, sys, time\n"
    "time.sleep(float(sys.argv[1]))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((sys.argv[2], 8080), H).serve_forever()\n"
)


async def test_readiness_waits_for_the_http_server(cluster: DevCluster, core: CoreV1Api) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    body = pod(
        "web", SERVE_LATER, readinessProbe=probe, ports=[{"name": "http", "containerPort": 8080}]
    )
    body["spec"]["containers"][0]["args"] = ["3", "0.0.0.0"]
    await apply(cluster, body)
    status = await eventually(lambda: phase(core, "web", "Running"), timeout=20, what="running")
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == "False" and ready["ContainersReady"] == "False"
    await kubectl(cluster.kubeconfig, "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
    status = await status_of(core, "web")
    assert status["containerStatuses"][0]["ready"] is True
    assert any('Readiness probe failed: Get "http://' in e for e in await events(core, "web"))


LIVE_THEN_DIE = (
    "import os, time\n"
    "open('/cache/healthy', 'w').close()\n"
    "print('up', flush=True)\n"
    "time.sleep(1.5)\n"
    "os.remove('/cache/healthy')\n"
    "time.sleep(600)\n"
)


async def test_a_failed_liveness_probe_restarts_the_container(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    probe = {
        "exec": {"command": ["cat", "/cache/healthy"]},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    body = pod(
        "live",
        LIVE_THEN_DIE,
        restartPolicy="Always",
        livenessProbe=probe,
        volumes=[{"name": "cache", "emptyDir": {}}],
        volumeMounts=[{"name": "cache", "mountPath": "/cache"}],
        terminationGracePeriodSeconds=1,
    )
    await apply(cluster, body)

    async def restarted() -> dict[str, Any] | None:
        statuses = (await status_of(core, "live")).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    container = await eventually(restarted, timeout=60, what="a liveness restart")
    assert container["lastState"]["terminated"]["exitCode"] in (137, 143)
    found = await events(core, "live")
    assert any(e.startswith("Unhealthy: Liveness probe failed: cat: /cache/healthy") for e in found)
    assert "Killing: Container main failed liveness probe, will be restarted" in found


SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"


async def test_exec_returns_output_and_exit_codes(cluster: DevCluster, core: CoreV1Api) -> None:
    body = pod(
        "shell",
        SLEEPER,
        volumes=[{"name": "config", "configMap": {"name": "cm"}}],
        volumeMounts=[{"name": "config", "mountPath": "/etc/shell"}],
    )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"motd": "hello"},
    }
    await apply(cluster, config_map, body)
    await eventually(lambda: phase(core, "shell", "Running"), timeout=20, what="running")
    kc = cluster.kubeconfig
    assert await kubectl(kc, "exec", "shell", "--", "cat", "/etc/shell/motd") == "hello"
    env = {**os.environ, "KUBECONFIG": str(kc)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 3 and out == b"out\n"
    assert b"err\n" in err and b"command terminated with exit code 3" in err
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "exec",
        "-i",
        "shell",
        "--",
        "tr",
        "a-z",
        "A-Z",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(b"from stdin\n")
    assert proc.returncode == 0 and out == b"FROM STDIN\n"

    async with WsApiClient(configuration=Configuration(host=cluster.api.url)) as ws_client:
        ws = CoreV1Api(ws_client)
        whole = await ws.connect_get_namespaced_pod_exec(
            "shell",
            "default",
            command=["sh", "-c", "echo $HOSTNAME; pwd"],
            stderr=True,
            stdout=True,
        )
        # HOSTNAME is the pod's name; the working directory is the container's (its HOME)
        hostname, cwd = whole.split()
        assert hostname == "shell" and cwd.endswith("/home") and "/pods/default/shell-" in cwd
        session = await ws.connect_get_namespaced_pod_exec(
            "shell",
            "default",
            command=["sh", "-c", "cat /etc/shell/motd; exit 7"],
            stderr=True,
            stdout=True,
            _preload_content=False,
        )
        output, code = b"", None
        async with session as conn:
            async for msg in conn:
                channel, data = msg.data[0], msg.data[1:]
                if channel == 1:
                    output += data
                elif channel == 3:
                    code = WsApiClient.parse_error_data(data)
        assert output == b"hello" and code == 7


TCP_ECHO = (
    "import socket, sys, time\n"
    "time.sleep(1)\n"
    "server = socket.create_server((sys.argv[1], 9000))\n"
    "while True:\n"
    "    conn, _ = server.accept()\n"
    "    conn.sendall(b'from the sidecar'); conn.close()\n"
)
CLIENT = (
    "import os, socket\n"
    "print(open('/srv/shared/hook').read().strip())\n"
    "with socket.create_connection((os.environ['POD_IP'], 9000)) as conn:\n"
    "    print(conn.recv(100).decode())\n"
)


async def test_a_sidecar_starts_before_the_containers_and_stops_after(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    shared = {"name": "shared", "mountPath": "/srv/shared"}
    sidecar = {
        "name": "echo",
        "image": "x",
        "restartPolicy": "Always",
        "command": [PY, "-c", TCP_ECHO, "0.0.0.0"],
        "startupProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 30},
    }
    hook = {"exec": {"command": ["sh", "-c", "echo post-start > /srv/shared/hook"]}}
    body = pod(
        "with-sidecar",
        CLIENT,
        initContainers=[sidecar],
        volumes=[{"name": "shared", "emptyDir": {}}],
        volumeMounts=[shared],
        lifecycle={"postStart": hook},
    )
    body["spec"]["containers"][0]["env"] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]
    await apply(cluster, body)
    status = await eventually(
        lambda: phase(core, "with-sidecar", "Succeeded", "Failed"), timeout=40, what="finished"
    )
    logs = await kubectl(cluster.kubeconfig, "logs", "with-sidecar", "-c", "main")
    assert logs == "post-start\nfrom the sidecar\n", (status, await events(core, "with-sidecar"))
    assert status["phase"] == "Succeeded"
    echo = status["initContainerStatuses"][0]
    assert echo["name"] == "echo" and "terminated" in echo["state"] and echo["started"] is False


async def test_deletion_runs_the_pre_stop_hook(cluster: DevCluster, core: CoreV1Api) -> None:
    datasets = cluster.state_dir.parent / "datasets"
    hook = {"exec": {"command": ["sh", "-c", "echo stopping > /srv/datasets/pre-stop"]}}
    body = pod(
        "hooked",
        SLEEPER,
        lifecycle={"preStop": hook},
        volumes=[{"name": "data", "hostPath": {"path": str(datasets)}}],
        volumeMounts=[{"name": "data", "mountPath": "/srv/datasets"}],
        terminationGracePeriodSeconds=5,
    )
    await apply(cluster, body)
    await eventually(lambda: phase(core, "hooked", "Running"), timeout=20, what="running")
    await kubectl(cluster.kubeconfig, "delete", "pod", "hooked", "--wait=true", "--timeout=60s")
    assert (datasets / "pre-stop").read_text() == "stopping\n"


async def test_logs_follow_tail_and_timestamps(cluster: DevCluster, core: CoreV1Api) -> None:
    script = "import time\nprint('one', flush=True)\ntime.sleep(1.5)\nprint('two', flush=True)\n"
    await apply(cluster, pod("talker", script))
    await eventually(lambda: phase(core, "talker", "Running", "Succeeded"), timeout=20, what="run")
    kc = cluster.kubeconfig
    assert await kubectl(kc, "logs", "-f", "talker") == "one\ntwo\n"  # until the pod ends
    await eventually(lambda: phase(core, "talker", "Succeeded"), timeout=20, what="done")
    stamped = await kubectl(kc, "logs", "talker", "--tail=1", "--timestamps")
    stamp, text = stamped.split(" ", 1)
    assert text == "two\n" and stamp.endswith("Z") and stamp[:4].isdigit()


async def test_a_volume_over_tmp_hides_the_hosts_tmp(cluster: DevCluster, core: CoreV1Api) -> None:
    body = pod(
        "tmp-user",
        "",
        volumes=[{"name": "tmp", "emptyDir": {}}],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    # the host's shell, not this checkout's Python: the checkout itself may live under /tmp
    shell = "ls -A /tmp | wc -l; echo x > /tmp/mine"
    body["spec"]["containers"][0]["command"] = ["/bin/sh", "-c", shell]
    await apply(cluster, body)
    status = await eventually(
        lambda: phase(core, "tmp-user", "Succeeded", "Failed"), timeout=20, what="done"
    )
    assert status["phase"] == "Succeeded"
    # the state directory (under the host's /tmp here) is hidden: the container's /tmp is empty
    assert (await kubectl(cluster.kubeconfig, "logs", "tmp-user")).strip() == "0"
    assert not Path("/tmp/mine").exists()
