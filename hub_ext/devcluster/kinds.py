"""The resource types served beyond the core ones: workloads, policy, networking, RBAC, CRDs.

Workloads (Deployment, ReplicaSet, DaemonSet, Job, CronJob) are driven by the controllers in
:mod:`hub_ext.devcluster.controllers`; StatefulSet, ControllerRevision, NetworkPolicy, Ingress,
PriorityClass, RBAC objects and the rest are stored and served (listed, watched, patched) but
nothing acts on them. Custom resources are added at run time from their CustomResourceDefinition
(:mod:`hub_ext.devcluster.crds`).
"""

from __future__ import annotations

from hub_ext.devcluster.resources import ResourceType

_ALL = ("all",)
_ST = ("status",)
_SCALE = ("status", "scale")
BUILTIN_KINDS: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), _ST),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ResourceType("", "v1", "podtemplates", "PodTemplate", True),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), _SCALE, _ALL),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _SCALE, _ALL),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _ST, _ALL),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _SCALE, _ALL),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ResourceType("batch", "v1", "jobs", "Job", True, (), _ST, _ALL),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _ST, _ALL),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), _ST
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        _ST,
    ),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), _ST),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    ResourceType("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        ("hpa",),
        _ST,
    ),
    # RBAC kinds are defined with the authorizer's resources (resources.py)
)
