"""Authentication, authorization and admission of the emulated API server.

``authn`` turns a request's bearer token (and impersonation headers) into a user, ``rbac``
decides with the cluster's Role, ClusterRole, RoleBinding and ClusterRoleBinding objects,
``reviews`` answers TokenRequest and the access reviews, ``serviceaccounts`` and
``podsecurity`` are the admission steps for pods, ``audit`` writes one JSON line per request.
"""
