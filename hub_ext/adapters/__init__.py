"""Adapters between the pure core and the outside world (Kubernetes, LDAP, Prometheus, files,
git)."""
