"""The kubelet: runs the pods bound to one node as local processes (see :mod:`.agent`)."""

from hub_ext.devcluster.kubelet.agent import IpPool, Kubelet, KubeletSettings

__all__ = ["IpPool", "Kubelet", "KubeletSettings"]
