"""Processes that are not JupyterHub classes: the GPU culler service, the backup job (snapshots
and the off-site restic backup) and the pre-puller's image awaiter."""
