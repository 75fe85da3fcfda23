"""The kubelet's process runner: environment, volumes, pod IP and signals (no server)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from hub_ext.devcluster.kubelet import processes as proc
from hub_ext.devcluster.kubelet import runtime
from hub_ext.devcluster.kubelet.containers import backoff_delay
from hub_ext.devcluster.kubelet.images import (
    KubeletConfig,
    KubeletConfigError,
    parse_kubelet_config,
)
from hub_ext.devcluster.kubelet.volumes import Lookups, Mount, container_mounts, prepare_volumes

PY = sys.executable


def make_pod(container: dict[str, Any], volumes: list | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "jupyter-ada",
            "namespace": "lab",
            "uid": "u-1",
            "labels": {"course": "ml101"},
        },
        "spec": {"nodeName": "room-a-gpu-1", "containers": [container], "volumes": volumes or []},
        "status": {"podIP": "127.10.0.7", "hostIP": "127.0.0.1"},
    }


def test_env_resolves_secrets_configmaps_fields_and_references() -> None:
    container = {
        "name": "notebook",
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "COURSE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['course']"}},
            },
            {"name": "URL", "value": "http://$(IP):8888/$(POD) costs $$5"},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CFG_"}],
    }
    lookups = Lookups(
        secrets={"s": {"data": {"token": base64.b64encode(b"s3cret").decode()}}, "gone": None},
        configmaps={"c": {"data": {"mode": "lab"}}},
    )
    pod = make_pod(container)
    assert proc.referenced_objects(pod) == ({"s", "gone"}, {"c"})
    env = proc.container_env(pod, container, lookups)
    assert env == {
        "CFG_mode": "lab",
        "TOKEN": "s3cret",
        "MODE": "lab",
        "POD": "jupyter-ada",
        "IP": "127.10.0.7",
        "COURSE": "ml101",
        "URL": "http://127.10.0.7:8888/jupyter-ada costs $5",
    }


def test_missing_secret_is_a_config_error_with_kubelet_wording() -> None:
    container = {
        "name": "c",
        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "t"}}}],
    }
    with pytest.raises(proc.ContainerConfigError) as info:
        proc.container_env(make_pod(container), container, Lookups(secrets={"nope": None}))
    assert info.value.reason == "CreateContainerConfigError"
    assert info.value.message == 'secret "nope" not found'


def test_launch_keeps_paths_and_substitutes_the_pod_ip(tmp_path: Path) -> None:
    container = {
        "name": "notebook",
        "image": "quay.io/jupyter/base-notebook:2025-03-17",
        "args": ["python3", "-c", "pass", "--ip=0.0.0.0", "--notebook-dir=/home/jovyan/work"],
        "workingDir": "/home/jovyan",
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    }
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}]
    pod = make_pod(container, volumes)
    paths = proc.PodPaths(tmp_path / "sandbox", tmp_path / "volumes")
    mounted = prepare_volumes(pod, paths.sandbox, paths.volumes_root, Lookups(), KubeletConfig())
    home = tmp_path / "volumes" / "lab" / "claim-ada"
    assert mounted == {"home": home} and home.is_dir()
    mounts = container_mounts(container, mounted)
    env = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/ada/"}
    spec = proc.launch_spec(pod, container, env, mounts, paths, KubeletConfig())
    # the paths are those inside the container: the mount namespace puts the volume there
    assert spec.argv[1:] == ("-c", "pass", "--ip=127.10.0.7", "--notebook-dir=/home/jovyan/work")
    assert spec.env["JUPYTERHUB_SERVICE_URL"] == "http://127.10.0.7:8888/user/ada/"
    assert spec.cwd == Path("/home/jovyan") and spec.env["HOME"] == "/home/jovyan"
    assert spec.mounts == (Mount(home, "/home/jovyan"),)
    assert os.path.basename(spec.argv[0]).startswith("python3")


def test_command_and_args_override_the_image_map(tmp_path: Path) -> None:
    config = parse_kubelet_config(
        {"images": {"example.org/tools": {"entrypoint": ["python3"], "cmd": ["-V"]}}}
    )
    paths = proc.PodPaths(tmp_path, tmp_path / "v")

    def argv(container: dict[str, Any]) -> tuple[str, ...]:
        spec = proc.launch_spec(make_pod(container), container, {}, [], paths, config)
        return (os.path.basename(spec.argv[0]), *spec.argv[1:])

    image = {"name": "c", "image": "example.org/tools:1.0"}
    assert argv(image)[1:] == ("-V",) and argv(image)[0].startswith("python3")
    assert argv({**image, "args": ["-c", "pass"]})[1:] == ("-c", "pass")
    assert argv({**image, "command": ["true"]}) == ("true",)
    unknown = {"name": "c", "image": "registry.example.org/unknown:1"}
    with pytest.raises(proc.ContainerConfigError) as info:
        proc.launch_spec(make_pod(unknown), unknown, {}, [], paths, config)
    assert info.value.reason == "ErrImagePull"
    assert 'no host command for repository "registry.example.org/unknown"' in info.value.message
    assert "kubelet.images" in info.value.message
    container = {"name": "c", "command": ["no-such-program-xyz"]}
    with pytest.raises(proc.ContainerConfigError, match="executable file not found"):
        proc.launch_spec(make_pod(container), container, {}, [], paths, config)


def test_the_image_map_covers_the_chart_images() -> None:
    config = KubeletConfig()
    hub = config.image("ghcr.io/labhub/labhub-hub:0.1.0")
    assert hub is not None and "/usr/local/etc/jupyterhub/jupyterhub_config.py" in hub.cmd
    for image in (
        "quay.io/jupyterhub/configurable-http-proxy:4.6.3",
        "quay.io/jupyter/scipy-notebook:2025-03-17",
        "registry.k8s.io/git-sync/git-sync:v4.4.0",
        "redis:7.4.2-alpine",
        "docker.io/library/traefik:v3.3.4",
        "registry.example.org/labhub/singleuser-ml:2026.1@sha256:abc",
    ):
        assert config.image(image) is not None, image
    with pytest.raises(KubeletConfigError, match=r"kubelet.images\['x'\]: give the host command"):
        parse_kubelet_config({"images": {"x": {"home": "/root"}}})
    with pytest.raises(KubeletConfigError, match="unknown field 'hostPaths'"):
        parse_kubelet_config({"hostPaths": ["/srv"]})


def spec_for(tmp_path: Path, code: str) -> proc.LaunchSpec:
    return proc.LaunchSpec(
        (PY, "-c", code), {"PATH": os.environ["PATH"]}, tmp_path, tmp_path / "out.log"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    state = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return state not in ("Z", "X")


async def test_exit_code_and_log(tmp_path: Path) -> None:
    process = proc.PodProcess(spec_for(tmp_path, "print('hello'); raise SystemExit(3)"))
    await process.start()
    assert await process.wait() == 3
    # each line after its RFC 3339 timestamp, as in the CRI log format
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z hello\n", (tmp_path / "out.log").read_text()
    )


async def test_sigterm_then_grace_then_sigkill_for_the_whole_group(tmp_path: Path) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('got TERM', flush=True))\n"
        f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    process = proc.PodProcess(spec_for(tmp_path, code))
    await process.start()
    log = tmp_path / "out.log"
    for _ in range(200):
        if log.exists() and log.read_text().strip():
            break
        await asyncio.sleep(0.02)
    child = int(log.read_text().split()[1])
    assert os.getpgid(child) == process.pid  # its own process group
    started = asyncio.get_running_loop().time()
    assert await process.stop(0.5) == 128 + 9
    assert asyncio.get_running_loop().time() - started >= 0.5
    assert "got TERM" in log.read_text()
    for _ in range(100):
        if not alive(child):
            break
        await asyncio.sleep(0.02)
    assert not alive(child)


async def test_a_process_that_honours_sigterm_ends_within_the_grace(tmp_path: Path) -> None:
    process = proc.PodProcess(spec_for(tmp_path, "import time; time.sleep(60)"))
    await process.start()
    await asyncio.sleep(0.1)
    assert await process.stop(10) == 128 + 15


def test_a_normal_user_gets_its_volumes_through_a_user_namespace() -> None:
    """The container init as an unprivileged user: a user namespace mapping the user to itself,
    a bind mount at a path that does not exist on the host, read-only honoured."""
    with tempfile.TemporaryDirectory(prefix="labhub-userns-") as where:
        os.chmod(where, 0o755)  # noqa: S103 - the unprivileged user must reach the spec
        _run_as_a_normal_user(Path(where))


def _run_as_a_normal_user(tmp_path: Path) -> None:
    source, scratch = tmp_path / "volume", tmp_path / "scratch"
    source.mkdir()
    scratch.mkdir()
    (source / "motd").write_text("hello")
    for path in (source, scratch):
        path.chmod(0o777)
    spec = {
        "mounts": [{"source": str(source), "target": "/opt/labhub-test/etc", "readOnly": True}],
        "dirs": [],
        "scratch": str(scratch),
        "cwd": "/",
        "userns": True,
        "argv": [
            "/bin/sh",
            "-c",
            "id -u; cat /opt/labhub-test/etc/motd; echo; : > /opt/labhub-test/etc/x",
        ],
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    spec_path.chmod(0o644)
    as_user = (
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    )
    result = subprocess.run(
        [*as_user, PY, "-S", str(runtime.NSINIT), str(spec_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert lines == [str(65534 if as_user else os.geteuid()), "hello"], result.stderr
    assert "Read-only file system" in result.stderr and result.returncode != 0
    assert not Path("/opt/labhub-test").exists()  # nothing created on the host


def test_a_failing_mount_says_what_went_wrong(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    spec = {
        "mounts": [{"source": str(tmp_path / "missing"), "target": "/opt/x", "readOnly": False}],
        "scratch": str(scratch),
        "cwd": "/",
        "argv": ["/bin/true"],
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    result = subprocess.run(
        [PY, "-S", str(runtime.NSINIT), str(spec_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 128
    assert result.stderr.startswith("devcluster: cannot start the container:")
    assert str(tmp_path / "missing") in result.stderr


def test_crash_loop_back_off_doubles_up_to_five_minutes() -> None:
    delays = [backoff_delay(n, 10.0, 300.0) for n in range(8)]
    assert delays == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
