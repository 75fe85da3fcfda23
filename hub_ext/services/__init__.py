"""Processes that are not JupyterHub classes: the GPU culler service and the backup job."""
