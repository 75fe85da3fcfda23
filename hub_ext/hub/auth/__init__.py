"""JupyterHub authenticators: LDAP (with group refresh), OIDC and the shared login gate."""
