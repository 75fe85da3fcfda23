"""Proven-optimal MIG layout planner for several seat requirements over a GPU inventory.

The goals, in order: the most seats, then the fewest stranded slices, then the fewest distinct
layouts; each is one MILP solved by HiGHS to proven optimality and checked exactly. When the
demand does not fit, the fewest extra GPUs of each catalog model (and of that model alone), and
whether whole-GPU sharing would serve it. See ``docs/explanation/mig-planner.md``.

- :mod:`.model`: requirements, nodes, the plan; the programme's data
- :mod:`.choices`: the ways to set up one GPU of a model, and the programme they make
- :mod:`.solve`: the MILPs (HiGHS) and their exact checks
- :mod:`.flow`: seats per requirement (maximum flow) and layouts per node
- :mod:`.plan`: :func:`plan_nodes`, the three goals and the alternatives
"""

from hub_ext.core.mig.planner.choices import choices, layout_table
from hub_ext.core.mig.planner.model import (
    ExtraGpus,
    GpuAssignment,
    MultiPlan,
    Node,
    Option,
    Requirement,
    SharingFits,
    layout_key,
)
from hub_ext.core.mig.planner.plan import plan_nodes
from hub_ext.core.mig.planner.solve import TIME_LIMIT_S, PlanSolverError, PlanTimeLimitError

__all__ = [
    "TIME_LIMIT_S",
    "ExtraGpus",
    "GpuAssignment",
    "MultiPlan",
    "Node",
    "Option",
    "PlanSolverError",
    "PlanTimeLimitError",
    "Requirement",
    "SharingFits",
    "choices",
    "layout_key",
    "layout_table",
    "plan_nodes",
]
