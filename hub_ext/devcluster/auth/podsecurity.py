"""Pod Security admission: the ``baseline`` and ``restricted`` Pod Security Standards, applied
to pods by the ``pod-security.kubernetes.io/<mode>`` labels of their namespace (``enforce``
refuses, ``warn`` answers with a ``Warning`` header, ``audit`` annotates the audit event).

The checks and their texts follow the real pod-security admission controller; every version
label (``...-version``) is read as ``latest``, which is the only version evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
LABEL = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")
MODES = ("enforce", "audit", "warn")
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
RESTRICTED_VOLUMES = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
)  # fmt: skip


@dataclass(frozen=True)
class Violation:
    check: str  # the check's id, which orders the message as the real controller does
    reason: str
    detail: str

    def text(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                yield c


def _sc(obj: Obj) -> Obj:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else {}


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _who(names: list[str], noun: str = "container") -> str:
    return f"{noun}s {_quoted(names)}" if len(names) > 1 else f"{noun} {_quoted(names)}"


def _bad_containers(spec: Obj, bad: Callable[[Obj], bool]) -> list[str]:
    return [c.get("name", "") for c in _containers(spec) if bad(c)]


def _host_namespaces(spec: Obj) -> Violation | None:
    found = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return Violation("hostNamespaces", "host namespaces", ", ".join(found)) if found else None


def _privileged(spec: Obj) -> Violation | None:
    names = _bad_containers(spec, lambda c: _sc(c).get("privileged") is True)
    if not names:
        return None
    return Violation(
        "privileged", "privileged", f"{_who(names)} must not set securityContext.privileged=true"
    )


def _added_caps(c: Obj) -> list[str]:
    caps = _sc(c).get("capabilities") or {}
    return [str(x) for x in caps.get("add") or []]


def _caps_baseline(spec: Obj) -> Violation | None:
    details = []
    for c in _containers(spec):
        bad = [x for x in _added_caps(c) if x not in BASELINE_CAPS]
        if bad:
            details.append(
                f'container "{c.get("name", "")}" must not include {_quoted(bad)} in '
                "securityContext.capabilities.add"
            )
    if not details:
        return None
    return Violation("capabilities_baseline", "non-default capabilities", ", ".join(details))


def _host_path(spec: Obj) -> Violation | None:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if not names:
        return None
    return Violation("hostPathVolumes", "hostPath volumes", _who(names, "volume"))


def _host_ports(spec: Obj) -> Violation | None:
    details = []
    for c in _containers(spec):
        ports = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if ports:
            noun = "hostPorts" if len(ports) > 1 else "hostPort"
            details.append(f'container "{c.get("name", "")}" uses {noun} {", ".join(ports)}')
    return Violation("hostPorts", "hostPort", ", ".join(details)) if details else None


def _proc_mount(spec: Obj) -> Violation | None:
    names = _bad_containers(spec, lambda c: _sc(c).get("procMount") not in (None, "Default"))
    if not names:
        return None
    return Violation(
        "procMount", "procMount", f"{_who(names)} must not set securityContext.procMount"
    )


def _seccomp_type(obj: Obj) -> Any:
    return (_sc(obj).get("seccompProfile") or {}).get("type")


def _seccomp_baseline(spec: Obj) -> Violation | None:
    parts = []
    if _seccomp_type(spec) == "Unconfined":
        parts.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    names = _bad_containers(spec, lambda c: _seccomp_type(c) == "Unconfined")
    if names:
        parts.append(
            f'{_who(names)} must not set securityContext.seccompProfile.type to "Unconfined"'
        )
    return (
        Violation("seccompProfile_baseline", "seccompProfile", "; ".join(parts)) if parts else None
    )


def _sysctls(spec: Obj) -> Violation | None:
    bad = [
        s.get("name", "")
        for s in _sc(spec).get("sysctls") or []
        if s.get("name") not in SAFE_SYSCTLS
    ]
    if not bad:
        return None
    return Violation("sysctls", "forbidden sysctls", ", ".join(bad))


def _volumes(spec: Obj) -> Violation | None:
    details = []
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name" and k not in RESTRICTED_VOLUMES]
        if kinds:
            details.append(f'volume "{v.get("name", "")}" uses restricted volume type "{kinds[0]}"')
    if not details:
        return None
    return Violation("restrictedVolumes", "restricted volume types", ", ".join(details))


def _escalation(spec: Obj) -> Violation | None:
    names = _bad_containers(spec, lambda c: _sc(c).get("allowPrivilegeEscalation") is not False)
    if not names:
        return None
    return Violation(
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation != false",
        f"{_who(names)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _non_root(spec: Obj) -> Violation | None:
    pod_value = _sc(spec).get("runAsNonRoot")
    explicit = _bad_containers(spec, lambda c: _sc(c).get("runAsNonRoot") is False)
    parts = []
    if pod_value is False:
        parts.append("pod must not set securityContext.runAsNonRoot=false")
    if explicit:
        parts.append(f"{_who(explicit)} must not set securityContext.runAsNonRoot=false")
    if pod_value is not True:
        unset = _bad_containers(spec, lambda c: _sc(c).get("runAsNonRoot") is None)
        if unset and pod_value is None:
            parts.append(f"pod or {_who(unset)} must set securityContext.runAsNonRoot=true")
    return Violation("runAsNonRoot", "runAsNonRoot != true", "; ".join(parts)) if parts else None


def _run_as_user(spec: Obj) -> Violation | None:
    parts = []
    if _sc(spec).get("runAsUser") == 0:
        parts.append("pod must not set runAsUser=0")
    names = _bad_containers(spec, lambda c: _sc(c).get("runAsUser") == 0)
    if names:
        parts.append(f"{_who(names)} must not set runAsUser=0")
    return Violation("runAsUser", "runAsUser=0", "; ".join(parts)) if parts else None


def _seccomp_restricted(spec: Obj) -> Violation | None:
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = _seccomp_type(spec)
    parts = []
    if pod_type is not None and pod_type not in allowed:
        parts.append(f'pod must not set securityContext.seccompProfile.type to "{pod_type}"')
    wrong = _bad_containers(spec, lambda c: _seccomp_type(c) not in (None, *allowed))
    if wrong:
        parts.append(
            f"{_who(wrong)} must not set securityContext.seccompProfile.type to "
            + _quoted(
                sorted({str(_seccomp_type(c)) for c in _containers(spec) if c.get("name") in wrong})
            )
        )
    if pod_type is None:
        unset = _bad_containers(spec, lambda c: _seccomp_type(c) is None)
        if unset:
            parts.append(
                f"pod or {_who(unset)} must set securityContext.seccompProfile.type to "
                '"RuntimeDefault" or "Localhost"'
            )
    return (
        Violation("seccompProfile_restricted", "seccompProfile", "; ".join(parts))
        if parts
        else None
    )


def _caps_restricted(spec: Obj) -> Violation | None:
    no_drop, bad_add = [], []
    for c in _containers(spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            no_drop.append(c.get("name", ""))
        adds = [x for x in caps.get("add") or [] if x != "NET_BIND_SERVICE"]
        if adds:
            bad_add.append((c.get("name", ""), adds))
    parts = []
    if no_drop:
        parts.append(f'{_who(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    for name, adds in bad_add:
        parts.append(
            f'container "{name}" must not include {_quoted(adds)} in '
            "securityContext.capabilities.add"
        )
    if not parts:
        return None
    return Violation("capabilities_restricted", "unrestricted capabilities", "; ".join(parts))


Check = Callable[[Obj], Violation | None]
BASELINE: tuple[Check, ...] = (
    _host_namespaces, _privileged, _caps_baseline, _host_path, _host_ports, _proc_mount,
    _seccomp_baseline, _sysctls,
)  # fmt: skip
RESTRICTED: tuple[Check, ...] = (
    *BASELINE, _volumes, _escalation, _non_root, _run_as_user, _seccomp_restricted,
    _caps_restricted,
)  # fmt: skip


#: checks a restricted check replaces at the restricted level (as the real registry's overrides)
OVERRIDDEN = {"capabilities_baseline", "hostPathVolumes", "seccompProfile_baseline"}


def violations(level: str, spec: Obj) -> list[Violation]:
    """What ``spec`` (a PodSpec) violates at ``level``, in the real controller's order: the
    baseline checks by id, then the restricted ones by id."""
    base = [v for check in BASELINE if (v := check(spec)) is not None]
    if level == "baseline":
        return sorted(base, key=lambda v: v.check)
    if level != "restricted":
        return []
    extra = [v for check in RESTRICTED[len(BASELINE) :] if (v := check(spec)) is not None]
    base = [v for v in base if v.check not in OVERRIDDEN]
    return sorted(base, key=lambda v: v.check) + sorted(extra, key=lambda v: v.check)


def policy(labels: dict[str, str]) -> dict[str, str]:
    """mode -> level from a namespace's labels (only the valid ones; privileged is omitted)."""
    out = {}
    for mode in MODES:
        level = labels.get(f"{LABEL}{mode}")
        if level in ("baseline", "restricted"):
            out[mode] = level
    return out


def summary(level: str, found: list[Violation]) -> str:
    return f'PodSecurity "{level}:latest": ' + ", ".join(v.text() for v in found)


def evaluate(labels: dict[str, str], spec: Obj) -> tuple[str | None, list[str], list[str]]:
    """(enforce denial, warnings, audit annotations) for a pod in a namespace with ``labels``."""
    modes = policy(labels)
    denial: str | None = None
    warnings: list[str] = []
    audits: list[str] = []
    for mode, level in modes.items():
        found = violations(level, spec)
        if not found:
            continue
        if mode == "enforce":
            denial = "violates " + summary(level, found)
        elif mode == "warn":
            warnings.append("would violate " + summary(level, found))
        else:
            audits.append("would violate " + summary(level, found))
    return denial, warnings, audits
