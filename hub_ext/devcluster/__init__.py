"""A local Kubernetes API emulator with a scheduler and a process-running kubelet.

It exists so that the spawner, the admission controller and ``make demo`` run their real
Kubernetes code paths on a machine without a cluster. See ``docs/explanation/devcluster.md``.
"""
