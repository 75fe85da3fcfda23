"""JupyterHub authenticators: LDAP, OIDC and the shared login gate."""
