"""``labhub devcluster up`` in the foreground: kubeconfig printed, kubectl works, SIGINT stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from devcluster_helpers import KUBECTL, pid_alive

LABHUB = [sys.executable, "-m", "hub_ext"]
CLUSTER = """
name: cli-lab
nodes:
  - {name: lab-1, zone: room-a, cpu: 8, memory: 32Gi,
     gpus: {model: A100-SXM4-40GB, count: 1, migStrategy: single, migConfig: all-1g.10gb}}
"""


@pytest.mark.slow
def test_up_prints_the_kubeconfig_and_stops_on_sigint(tmp_path: Path) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text(CLUSTER)
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    up = subprocess.Popen(
        [*LABHUB, "devcluster", "up", "--config", str(config), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        assert up.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, "labhub devcluster up ended early: " + "".join(lines)
            lines.append(line)
            if line.startswith("kubeconfig: "):
                break
        kubeconfig = Path(lines[-1].split(": ", 1)[1].strip())
        assert kubeconfig == (state / "kubeconfig").resolve() and kubeconfig.exists()
        kenv = {**env, "KUBECONFIG": str(kubeconfig)}

        def kubectl(*args: str) -> str:
            done = subprocess.run(
                [KUBECTL, *args], env=kenv, capture_output=True, text=True, timeout=30
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        nodes = kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.allocatable}")
        assert '"nvidia.com/gpu":"4"' in nodes
        kubectl(
            "run", "nap", "--image=ignored", "--restart=Never", "--command", "--", "sleep", "300"
        )
        pid = 0
        for _ in range(200):
            out = kubectl(
                "get", "pod", "nap", "-o", "jsonpath={.status.containerStatuses[0].containerID}"
            )
            if out.startswith("devcluster://"):
                pid = int(out.split("//")[1])
                break
            time.sleep(0.05)
        assert pid and pid_alive(pid)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        rest = up.stdout.read()
        assert "devcluster stopped" in rest
        assert not pid_alive(pid)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout:
            up.stdout.close()
