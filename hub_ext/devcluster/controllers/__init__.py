"""The controllers of the development cluster: workloads, jobs, endpoints, disruption budgets.

They run in the API server's process and act on its store directly, the way
kube-controller-manager's controllers act through the API (see :mod:`.manager`).
"""
