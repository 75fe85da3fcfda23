"""The resource types the emulated API server serves, and their discovery attributes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (``pods``, ``storageclasses`` ...) served under a group version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Storage key: ``pods`` for core resources, ``storageclasses.storage.k8s.io`` else."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

_ALL = ("all",)
_RBAC = "rbac.authorization.k8s.io"
RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("status", "binding", "log", "exec", "eviction"),
        _ALL,
    ),
    ResourceType(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)
    ),
    ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), ("status",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status",), _ALL),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType(_RBAC, "v1", "roles", "Role", True),
    ResourceType(_RBAC, "v1", "rolebindings", "RoleBinding", True),
    ResourceType(_RBAC, "v1", "clusterroles", "ClusterRole", False),
    ResourceType(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshots",
        "VolumeSnapshot",
        True,
        ("vs",),
        ("status",),
    ),
    ResourceType(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshotclasses",
        "VolumeSnapshotClass",
        False,
        ("vsclass", "vsclasses"),
    ),
    ResourceType(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshotcontents",
        "VolumeSnapshotContent",
        False,
        ("vsc", "vscs"),
        ("status",),
    ),
)


def _with_kinds(base: tuple[ResourceType, ...]) -> tuple[ResourceType, ...]:
    from hub_ext.devcluster.kinds import BUILTIN_KINDS

    seen = {(r.group, r.version, r.plural) for r in base}
    return base + tuple(r for r in BUILTIN_KINDS if (r.group, r.version, r.plural) not in seen)


RESOURCES = _with_kinds(RESOURCES)
BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
BY_KEY: dict[str, ResourceType] = {r.key: r for r in RESOURCES}


def groups() -> dict[str, list[str]]:
    """Group name -> its versions (``""`` is the core group), in serving order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return BY_PATH.get((group, version, plural))


def resource_names(rtype: ResourceType) -> list[str]:
    """Every name a fault rule may use for ``rtype``: plural, ``plural.group``, kind."""
    return [rtype.plural, rtype.key, rtype.kind.lower()]


class Registry:
    """The built-in resource types plus those that CustomResourceDefinitions add at run time.

    One per API server, so that the custom resources of one server never show in another.
    """

    def __init__(self) -> None:
        self.custom: dict[tuple[str, str, str], ResourceType] = {}
        self.by_key: dict[str, ResourceType] = dict(BY_KEY)

    def all(self) -> list[ResourceType]:
        return [*RESOURCES, *self.custom.values()]

    def add(self, rtype: ResourceType) -> None:
        self.custom[(rtype.group, rtype.version, rtype.plural)] = rtype
        self.by_key[rtype.key] = rtype

    def remove(self, group: str, plural: str) -> None:
        for path in [p for p in self.custom if p[0] == group and p[2] == plural]:
            del self.custom[path]
        self.by_key.pop(f"{plural}.{group}", None)

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.all():
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        return out

    def resources_in(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self.all() if r.group == group and r.version == version]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return BY_PATH.get((group, version, plural)) or self.custom.get((group, version, plural))
