"""JupyterHub integration: authenticators, spawner, handlers. The only layer using traitlets."""
