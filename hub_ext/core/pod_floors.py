"""The security floor of every student pod, and the settings that would loosen it.

LabHub builds a student's pod from KubeSpawner's own manifest and then raises it to this floor:

* the pod runs as non-root (``runAsNonRoot: true``, never ``runAsUser: 0``) with the
  ``RuntimeDefault`` seccomp profile (a ``Localhost`` profile is kept);
* every container (the notebook, init and extra containers) also runs as non-root, without
  privilege escalation, not privileged, with all capabilities dropped (only ``NET_BIND_SERVICE``
  may be added back, as the Pod Security Standard "restricted" allows);
* no ServiceAccount token is mounted (``automountServiceAccountToken: false``), and the pod shares
  no host namespace (``hostNetwork``, ``hostPID``, ``hostIPC``).

:func:`apply_floor` fills in what is missing. A setting that asks for less is never quietly
overwritten: :func:`setting_violations` names it when the hub starts, and
:func:`floor_violations` checks the final pod (after callables and ``modify_pod_hook``) before it
is sent.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "FloorError",
    "apply_floor",
    "floor_violations",
    "setting_violations",
]

Manifest = dict[str, Any]
SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
CAPABILITIES_OK = frozenset({"NET_BIND_SERVICE"})
HOST_FIELDS = (("hostNetwork", "host_network"), ("hostPID", "host_pid"), ("hostIPC", "host_ipc"))
CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")


class FloorError(ValueError):
    """A setting or hook would loosen the pod security floor; the message names each one."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            "LabHub refuses settings that loosen the security floor of student pods "
            f"(non-root, no privilege escalation, all capabilities dropped, seccomp "
            f"RuntimeDefault, no ServiceAccount token):\n{lines}\n"
            "Remove these settings or change them to a value the floor allows."
        )


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    if camel in obj:
        return obj[camel]
    return obj.get(snake) if snake else None


def _container_context_problems(sc: Any, where: str) -> Iterator[str]:
    if not isinstance(sc, Mapping):
        return
    if sc.get("runAsNonRoot") is False:
        yield f"{where} sets runAsNonRoot: false; servers must run as non-root"
    if sc.get("runAsUser") == 0:
        yield f"{where} sets runAsUser: 0 (root); choose a non-zero user id"
    if sc.get("allowPrivilegeEscalation") is True:
        yield f"{where} sets allowPrivilegeEscalation: true; it must stay false"
    if sc.get("privileged") is True:
        yield f"{where} sets privileged: true; servers may not be privileged"
    caps = sc.get("capabilities") or {}
    added = set(caps.get("add") or []) - CAPABILITIES_OK if isinstance(caps, Mapping) else set()
    if added:
        yield (
            f"{where} adds capabilities {sorted(added)}; all capabilities are dropped "
            "(only NET_BIND_SERVICE may be added)"
        )
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_OK:
        yield f"{where} sets seccompProfile {seccomp!r}; use RuntimeDefault (or Localhost)"


def _pod_context_problems(sc: Any, where: str) -> Iterator[str]:
    if not isinstance(sc, Mapping):
        return
    if sc.get("runAsNonRoot") is False:
        yield f"{where} sets runAsNonRoot: false; servers must run as non-root"
    if sc.get("runAsUser") == 0:
        yield f"{where} sets runAsUser: 0 (root); choose a non-zero user id"
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_OK:
        yield f"{where} sets seccompProfile {seccomp!r}; use RuntimeDefault (or Localhost)"


def _containers(value: Any) -> list[tuple[str, Any]]:
    """(name, container) of a KubeSpawner container setting (a list, or a dict of them)."""
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in sorted(value.items())]
    if isinstance(value, list):
        return [(str((c or {}).get("name", i)), c) for i, c in enumerate(value)]
    return []


def setting_violations(settings: Mapping[str, Any]) -> list[str]:
    """The KubeSpawner settings (trait name -> configured value) that would loosen the floor,
    one line each naming the setting. Callable values are checked later, on the built pod."""
    out: list[str] = []
    if settings.get("privileged") is True:
        out.append("privileged = True would run the server privileged")
    if settings.get("allow_privilege_escalation") is True:
        out.append("allow_privilege_escalation = True would allow privilege escalation")
    if settings.get("uid") == 0:
        out.append("uid = 0 would run the server as root; choose a non-zero user id")
    if settings.get("automount_service_account_token") is True:
        out.append(
            "automount_service_account_token = True would mount a ServiceAccount token in "
            "students' pods; a service_account may be named, but its token is never mounted"
        )
    out += _container_context_problems(
        settings.get("container_security_context"), "container_security_context"
    )
    out += _pod_context_problems(settings.get("pod_security_context"), "pod_security_context")
    pod = settings.get("extra_pod_config") or {}
    if isinstance(pod, Mapping):
        if _get(pod, "automountServiceAccountToken", "automount_service_account_token") is True:
            out.append("extra_pod_config sets automountServiceAccountToken: true")
        for camel, snake in HOST_FIELDS:
            if _get(pod, camel, snake) is True:
                out.append(f"extra_pod_config sets {camel}: true; pods share no host namespace")
        out += _pod_context_problems(
            _get(pod, "securityContext", "security_context"), "extra_pod_config.securityContext"
        )
    extra = settings.get("extra_container_config") or {}
    if isinstance(extra, Mapping):
        out += _container_context_problems(
            _get(extra, "securityContext", "security_context"),
            "extra_container_config.securityContext",
        )
    for trait in ("init_containers", "extra_containers"):
        for name, container in _containers(settings.get(trait)):
            if isinstance(container, Mapping):
                out += _container_context_problems(
                    _get(container, "securityContext", "security_context"),
                    f"{trait}[{name}].securityContext",
                )
    return out


def _all_containers(spec: Manifest) -> Iterator[Manifest]:
    for key in CONTAINER_KEYS:
        yield from spec.get(key) or []


def floor_violations(pod: Manifest) -> list[str]:
    """What in a finished pod manifest (API camelCase) is below the floor; [] when none."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    if spec.get("automountServiceAccountToken") is not False:
        out.append("the pod would mount a ServiceAccount token")
    for camel, _ in HOST_FIELDS:
        if spec.get(camel):
            out.append(f"the pod sets {camel}")
    pod_sc = spec.get("securityContext") or {}
    out += _pod_context_problems(pod_sc, "the pod's securityContext")
    if pod_sc.get("runAsNonRoot") is not True:
        out.append("the pod's securityContext lacks runAsNonRoot: true")
    for c in _all_containers(spec):
        where = f"container {c.get('name')!r}"
        sc = c.get("securityContext") or {}
        out += _container_context_problems(sc, where)
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where} lacks allowPrivilegeEscalation: false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            out.append(f"{where} does not drop ALL capabilities")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            out.append(f"{where} is not marked runAsNonRoot")
    return out


def _floor_container(container: Manifest) -> Manifest:
    sc = dict(container.get("securityContext") or {})
    sc.setdefault("runAsNonRoot", True)
    sc.setdefault("allowPrivilegeEscalation", False)
    sc.setdefault("privileged", False)
    sc.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    caps = dict(sc.get("capabilities") or {})
    drop = list(caps.get("drop") or [])
    if "ALL" not in drop:
        drop = ["ALL", *drop]
    caps["drop"] = drop
    sc["capabilities"] = caps
    return {**container, "securityContext": sc}


def apply_floor(pod: Manifest) -> Manifest:
    """A copy of ``pod`` with the floor filled in where the manifest says nothing.

    Values that contradict the floor are left for :func:`floor_violations` to report: the floor
    never silently replaces an explicit setting.
    """
    out = copy.deepcopy(pod)
    spec = out.setdefault("spec", {})
    spec["automountServiceAccountToken"] = bool(spec.get("automountServiceAccountToken", False))
    sc = dict(spec.get("securityContext") or {})
    sc.setdefault("runAsNonRoot", True)
    sc.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    spec["securityContext"] = sc
    for key in CONTAINER_KEYS:
        if spec.get(key):
            spec[key] = [_floor_container(c) for c in spec[key]]
    return out
