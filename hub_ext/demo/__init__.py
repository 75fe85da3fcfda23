"""``labhub demo``: LabHub with OpenLDAP, the development cluster and JupyterHub on one machine.

:mod:`hub_ext.demo.stack` orchestrates, :mod:`hub_ext.demo.hubconfig` writes the hub's
configuration and :mod:`hub_ext.demo.processes` keeps track of every process the demo starts.
"""

from hub_ext.demo.processes import DemoError
from hub_ext.demo.stack import DemoOptions, DemoStack, run_demo

__all__ = ["DemoError", "DemoOptions", "DemoStack", "run_demo"]
