"""Waits until the hook pre-puller DaemonSet has pulled the course images on every GPU node.

Run by the chart's ``hook-image-awaiter`` Job before an install or upgrade (Helm hook)::

    python3 -m hub_ext.services.image_awaiter --namespace=NS --daemonset=NAME --timeout=900

It reads the DaemonSet's status every few seconds and exits 0 once every node it was scheduled to
runs an up-to-date, ready pod (all images pulled), or 1 with a clear message when ``--timeout``
passes first, so that Helm stops the upgrade before students meet cold nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import config
from kubernetes_asyncio.client import AppsV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.gpu_pods import kubernetes_client
from hub_ext.adapters.k8s.informer import read_json

PROG = "labhub-image-awaiter"


@dataclass(frozen=True)
class Progress:
    """How far a DaemonSet's rollout is: nodes with an up-to-date ready pod, of all nodes."""

    ready: int
    desired: int
    current: bool

    @property
    def done(self) -> bool:
        return self.current and self.ready >= self.desired

    def describe(self) -> str:
        return f"{self.ready} of {self.desired} GPU node(s) have the images"


def progress(daemonset: Mapping[str, Any]) -> Progress:
    """Progress from a DaemonSet object (as the API returns it)."""
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    desired = int(status.get("desiredNumberScheduled") or 0)
    ready = min(int(status.get("numberReady") or 0), int(status.get("updatedNumberScheduled") or 0))
    current = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 1)
    return Progress(ready, desired, current)


async def wait(apps: AppsV1Api, namespace: str, name: str, timeout: float, every: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = ""
    while True:
        try:
            resp = await apps.read_namespaced_daemon_set(name, namespace, _preload_content=False)
            state = progress(await read_json(resp))
        except ApiException as exc:
            print(
                f"{PROG}: cannot read DaemonSet {namespace}/{name} (HTTP {exc.status} "
                f"{exc.reason}); check the hook's Role",
                file=sys.stderr,
            )
            return 1
        if state.describe() != last:
            last = state.describe()
            print(f"{PROG}: {last}", flush=True)
        if state.done:
            return 0
        if loop.time() >= deadline:
            print(
                f"{PROG}: after {timeout:g} s only {last}; the upgrade stops here. Check the "
                f"pods of DaemonSet {name} (kubectl describe) for image pull errors, or raise "
                "prePuller.hook.timeoutSeconds",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(every)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--daemonset", required=True)
    parser.add_argument("--timeout", type=float, default=900, metavar="SECONDS")
    parser.add_argument("--every", type=float, default=5, metavar="SECONDS")
    parser.add_argument("--kubeconfig", default=None)
    args = parser.parse_args(argv)

    async def run() -> int:
        try:
            api = await kubernetes_client(args.kubeconfig)
        except (config.ConfigException, OSError) as exc:
            print(f"{PROG}: no usable Kubernetes credentials ({exc})", file=sys.stderr)
            return 2
        async with api:
            return await wait(
                AppsV1Api(api), args.namespace, args.daemonset, args.timeout, args.every
            )

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
