"""The JupyterHub spawner: spawner, profile options, spawn form and admission glue."""
