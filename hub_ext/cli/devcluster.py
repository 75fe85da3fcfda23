"""``labhub devcluster``: run the local Kubernetes emulator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Run the LabHub development cluster: a local Kubernetes API server (plain HTTP on 127.0.0.1)
with a scheduler that binds pods like kube-scheduler (resources including MIG slices,
nodeSelector, node affinity, taints, scheduling gates) and a kubelet that runs each pod's
container command as a process on this machine. It lets the spawner, the admission controller
and the demo run their real Kubernetes code paths without a cluster.

What it is NOT:
  - no images: nothing is pulled; the container's command (or the host command the cluster
    file's kubelet.images map gives for its image) runs on this host with the tools installed
    here, in its own mount namespace where the pod's volumes are at their mount paths;
  - no isolation: pods run as your user, share the host network (each pod listens on its own
    loopback address 127.x.y.z, substituted for 0.0.0.0) and see the host file system;
  - no network policy enforcement;
  - no resource limits enforcement (requests only count for scheduling);
  - no GPUs: MIG slices are advertised from the cluster file, never attached.
Never use it for real users or untrusted code.
"""

UP_DESCRIPTION = """\
Start the cluster in the foreground and print the path of its kubeconfig. Ctrl-C (SIGINT) or
SIGTERM stops every pod process and the cluster. Objects are kept in the state directory, so
the next start continues with them.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devcluster",
        help="run the local Kubernetes emulator (no images, no isolation)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="devcluster_command", metavar="COMMAND")
    up = sub.add_parser(
        "up",
        help="start the cluster in the foreground",
        description=UP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--config",
        type=Path,
        default=None,
        help="cluster file (YAML); default: the shipped reference lab",
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".state/devcluster"),
        help="directory for objects, volumes and logs (default: .state/devcluster)",
    )
    up.add_argument(
        "--port", type=int, default=0, help="plain-HTTP API server port (default: a free port)"
    )
    up.add_argument(
        "--audit-log",
        type=Path,
        default=None,
        metavar="FILE",
        help="append one JSON line per API request to FILE (an audit.k8s.io/v1 Event: user, "
        "groups, verb, resource, subresource, namespace, name, response code, timestamps)",
    )
    up.set_defaults(func=run_up)
    parser.set_defaults(func=lambda args: _print_help(parser))


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_up(args: argparse.Namespace) -> int:
    from hub_ext.devcluster.config import ClusterConfigError, load_cluster_config

    try:
        config = load_cluster_config(args.config)
    except ClusterConfigError as exc:
        print(f"labhub devcluster: error: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("labhub devcluster: error: --port must be between 0 and 65535", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config, args.state_dir, args.port, args.audit_log))
    except OSError as exc:
        print(f"labhub devcluster: error: cannot start: {exc}", file=sys.stderr)
        return 1


async def _serve(config: Any, state_dir: Path, port: int, audit_log: Path | None = None) -> int:
    from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster = DevCluster(config, state_dir, DevClusterOptions(port=port, audit_log=audit_log))
    try:
        await cluster.start()
        nodes = ", ".join(n.name for n in config.nodes)
        print(
            f"devcluster {config.name!r} is up: API server {cluster.api.secure_url} "
            f"(plain HTTP for this machine's tools: {cluster.api.url})",
            flush=True,
        )
        print(f"nodes: {nodes}", flush=True)
        print(f"kubeconfig: {cluster.kubeconfig.resolve()}", flush=True)
        print(f"  export KUBECONFIG={cluster.kubeconfig.resolve()}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        await stop.wait()
        print("stopping devcluster ...", flush=True)
    finally:
        await cluster.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    print("devcluster stopped", flush=True)
    return 0
