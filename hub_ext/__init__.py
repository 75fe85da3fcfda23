"""LabHub: JupyterHub for GPU teaching labs.

Layers (enforced by import-linter contracts in ``pyproject.toml``):

- :mod:`hub_ext.core` -- pure domain logic (MIG catalog, planner, capacity, admission policy,
  profiles). No I/O, no framework imports, clock passed in.
- :mod:`hub_ext.adapters` -- talk to the outside world (Kubernetes, LDAP, files and git).
- :mod:`hub_ext.hub` -- the JupyterHub classes (authenticators, spawner, handlers); the only
  place for traitlets.
- :mod:`hub_ext.services` -- the processes that are not JupyterHub classes (GPU culler, backup job).
- :mod:`hub_ext.cli` and :mod:`hub_ext.demo` -- the ``labhub`` command and ``make demo``.
- :mod:`hub_ext.devcluster` -- the local Kubernetes emulator used by the tests and ``make demo``.

``docs/explanation/architecture.md`` shows the sub-packages and where each kind of change goes.
"""

__version__ = "0.1.0.dev0"
