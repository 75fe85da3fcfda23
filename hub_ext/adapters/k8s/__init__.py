"""Kubernetes adapters: informer, admission controller, profile plans, GPU pods, overview."""
