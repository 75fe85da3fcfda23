"""Service addresses, the environment variables and the hosts file that pods see.

Cluster IPs are picked at random from ``127.250.0.0/16`` (pod IPs are ``127.10.0.0`` to
``127.249.255.255``, one ``/16`` per node), so a Service is reachable on the host at
``<clusterIP>:<port>``. Node ports are picked at random from ``30000-32767``, as Kubernetes
does. :func:`service_env` gives the
``<SVC>_SERVICE_HOST``/``_PORT`` variables (and the Docker-links style ones) that the kubelet
puts into a container's environment when ``enableServiceLinks`` is on, and :func:`hosts_file`
the ``/etc/hosts`` content that makes ``<svc>.<ns>.svc.cluster.local`` (and its short forms)
resolve inside a pod.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from hub_ext.devcluster.api_errors import Cause, invalid
from hub_ext.devcluster.store import Store

Obj = dict[str, Any]
CLUSTER_IP_PREFIX = "127.250."
NODE_PORTS = range(30000, 32768)
CLUSTER_DOMAIN = "cluster.local"


def _services(store: Store) -> Iterable[Obj]:
    return store.objects.get("services", {}).values()


def allocate_cluster_ip(store: Store) -> str:
    """A free address of ``127.250.0.0/16``, picked at random as Kubernetes does (so that two
    clusters on one host rarely listen on the same address)."""
    used = {(s.get("spec") or {}).get("clusterIP") for s in _services(store)}
    start = random.randrange(65536)
    for i in range(65536):
        n = (start + i) % 65536
        address = f"{CLUSTER_IP_PREFIX}{n // 256}.{n % 256}"
        if n % 256 not in (0, 255) and address not in used:
            return address
    raise invalid("Service", "", [Cause("spec.clusterIP", "Internal error: range is full")])


def allocate_node_ports(service: Obj, store: Store) -> None:
    """Give each port of a NodePort or LoadBalancer service a ``nodePort`` (or check its own)."""
    spec = service.get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return
    me = (service["metadata"].get("namespace"), service["metadata"].get("name"))
    used = {
        port.get("nodePort")
        for other in _services(store)
        if (other["metadata"].get("namespace"), other["metadata"]["name"]) != me
        for port in (other.get("spec") or {}).get("ports") or []
    }
    start = random.randrange(len(NODE_PORTS))  # random, as Kubernetes allocates them
    ordered = [*NODE_PORTS[start:], *NODE_PORTS[:start]]
    free = (p for p in ordered if p not in used)
    for i, port in enumerate(spec.get("ports") or []):
        wanted = port.get("nodePort")
        if wanted is None:
            port["nodePort"] = next(free)
            used.add(port["nodePort"])
        elif wanted in used:
            raise invalid(
                "Service",
                service["metadata"].get("name") or "",
                [
                    Cause(
                        f"spec.ports[{i}].nodePort",
                        f"Invalid value: {wanted}: provided port is already allocated",
                    )
                ],
            )
        elif wanted not in NODE_PORTS:
            raise invalid(
                "Service",
                service["metadata"].get("name") or "",
                [
                    Cause(
                        f"spec.ports[{i}].nodePort",
                        f"Invalid value: {wanted}: provided port is not in the valid range. "
                        "The range of valid ports is 30000-32767",
                    )
                ],
            )
        else:
            used.add(wanted)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: Iterable[Obj]) -> dict[str, str]:
    """The variables the kubelet derives from the Services of a pod's namespace.

    For each Service with a cluster IP: ``<SVC>_SERVICE_HOST``, ``<SVC>_SERVICE_PORT`` (the first
    port), ``<SVC>_SERVICE_PORT_<PORTNAME>`` for named ports, and ``<SVC>_PORT``,
    ``<SVC>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]``. The container's own ``env`` wins over these.
    """
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        prefix = _env_name(svc["metadata"]["name"])
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        for i, port in enumerate(ports):
            proto = str(port.get("protocol") or "TCP")
            url = f"{proto.lower()}://{ip}:{port['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            env[base] = url
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def hosts_file(services: Iterable[Obj], pod: Obj) -> str:
    """``/etc/hosts`` for ``pod``: itself, then every Service with a cluster IP.

    A Service ``svc`` in namespace ``ns`` is listed as ``svc.ns.svc.cluster.local``,
    ``svc.ns.svc`` and ``svc.ns``, and also as plain ``svc`` when it is in the pod's own namespace
    (the names a pod's DNS search path resolves). Headless services are not listed.
    """
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    spec = pod.get("spec") or {}
    hostname = spec.get("hostname") or meta.get("name") or "localhost"
    lines = [
        "# Kubernetes-managed hosts file (labhub devcluster).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    pod_ip = (pod.get("status") or {}).get("podIP")
    if pod_ip:
        lines.append(f"{pod_ip}\t{hostname}")
    for svc in sorted(
        services, key=lambda s: (s["metadata"].get("namespace") or "", s["metadata"]["name"])
    ):
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        name, ns = svc["metadata"]["name"], svc["metadata"].get("namespace") or "default"
        names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        lines.append(f"{ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"
