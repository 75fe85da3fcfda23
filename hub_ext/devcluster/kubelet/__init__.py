"""The kubelet: runs the pods bound to one node as local processes.

:mod:`.agent` watches the node's pods and reports their status, :mod:`.runtime` starts a
container in its own mount namespace, :mod:`.volumes` builds its volumes, :mod:`.probes` runs
its probes, :mod:`.exec` serves ``pods/exec``, :mod:`.images` maps images to host commands.
"""
