"""The planner's integer programmes, solved by HiGHS (``highspy``) and checked exactly.

Variables: ``x[p]``, how many GPUs of column p's group run column p (integer), and the seats
served (integer), bounded by every cut of the flow network from instance classes to
requirements (or, with many requirements, by flow variables; see :func:`_model`). Rows: per
group at most (or exactly) its GPUs. Each question below is one MILP that HiGHS solves to
proven optimality (relative and absolute gap 0). Every answer is then checked in exact integer
arithmetic: the counts are whole and keep every GPU count, serve the seats claimed (maximum
flow, :func:`~.flow.seats_served`), and no better integer value lies within the solver's dual
bound. A time limit guards each solve; hitting it
raises :class:`PlanTimeLimitError` rather than returning an unproven answer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
from highspy._core import _Highs  # the bare solver: highspy.Highs prints a banner on stdout

from hub_ext.core.mig.planner.flow import seats_served
from hub_ext.core.mig.planner.model import Problem, Solution

TIME_LIMIT_S = 60.0  # per solve; only a safety net, typical solves take milliseconds
_INF = highspy.kHighsInf
_INT = highspy.HighsVarType.kInteger
_TOL = 1e-6


_ONE_THREAD = [False]  # whether HiGHS's shared scheduler was set up for one thread


class PlanTimeLimitError(RuntimeError):
    """The solver did not prove an answer within the time limit."""


class PlanSolverError(RuntimeError):
    """The solver failed, or its answer failed the exact check (a bug to report)."""


class _Milp:
    """A MILP built variable by variable and row by row (each row ``lo <= sum <= hi``), then
    solved once: minimise ``cost . v`` over non-negative variables ``v``."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.kinds: list[highspy.HighsVarType] = []
        self.rows: list[tuple[float, float, dict[int, float]]] = []

    def var(self, upper: float, kind: highspy.HighsVarType = _INT, cost: float = 0.0) -> int:
        self.cost.append(cost)
        self.lower.append(0.0)
        self.upper.append(upper)
        self.kinds.append(kind)
        return len(self.cost) - 1

    def row(self, lo: float, hi: float, entries: dict[int, float]) -> None:
        self.rows.append((lo, hi, entries))

    def run(self, time_limit: float, what: str) -> tuple[list[float], float] | None:
        """Optimal values and the dual bound (None: infeasible)."""
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(self.cost), len(self.rows)
        lp.col_cost_ = np.array(self.cost, dtype=np.float64)
        lp.col_lower_ = np.array(self.lower, dtype=np.float64)
        lp.col_upper_ = np.array(self.upper, dtype=np.float64)
        lp.row_lower_ = np.array([r[0] for r in self.rows], dtype=np.float64)
        lp.row_upper_ = np.array([r[1] for r in self.rows], dtype=np.float64)
        starts, index, value = [0], [], []
        for _, _, entries in self.rows:
            for col, coef in sorted(entries.items()):
                if coef:
                    index.append(col)
                    value.append(coef)
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = lp.num_col_, lp.num_row_
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=np.float64)
        lp.integrality_ = self.kinds
        if not _ONE_THREAD[0]:
            # one thread: the programmes are small (starting workers costs more than they
            # save) and the answers do not depend on the machine; HiGHS's scheduler is shared
            # by the process, so it is set up once
            _Highs.resetGlobalScheduler(True)
            _ONE_THREAD[0] = True
        solver = _Highs()
        for name, val in (
            ("output_flag", False),
            ("threads", 1),
            ("mip_rel_gap", 0.0),
            ("mip_abs_gap", 0.0),
            ("time_limit", float(time_limit)),
            ("random_seed", 0),
            ("mip_allow_restart", False),  # faster on these small programmes
        ):
            solver.setOptionValue(name, val)
        if solver.passModel(lp) != highspy.HighsStatus.kOk or solver.run() not in (
            highspy.HighsStatus.kOk,
            highspy.HighsStatus.kWarning,
        ):
            raise PlanSolverError(f"the solver failed on {what}")
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return None
        if status == highspy.HighsModelStatus.kTimeLimit:
            raise PlanTimeLimitError(
                f"the solver did not prove {what} within {time_limit:g} s; run again with a "
                f"larger time limit (labhub plan --time-limit {max(10 * time_limit, 600):g}), "
                "or plan fewer GPU models or requirements at once"
            )
        if status != highspy.HighsModelStatus.kOptimal:
            raise PlanSolverError(f"the solver ended {status.name} on {what}")
        values = list(solver.getSolution().col_value)
        return values, float(solver.getInfo().mip_dual_bound)


def _whole(values: Sequence[float], cols: range, what: str) -> tuple[int, ...]:
    out = []
    for v in (values[c] for c in cols):
        n = round(v)
        if abs(v - n) > _TOL:
            raise PlanSolverError(f"the solver's answer to {what} is not whole ({v})")
        out.append(n)
    return tuple(out)


def _proven(value: int, bound: float, what: str) -> None:
    """``value`` (minimised, integral) is optimal: no integer below it is above the bound."""
    if not math.isfinite(bound) or value - 1 >= bound - _TOL:
        raise PlanSolverError(f"the solver's answer to {what} ({value}) is not within its bound")


_MOST_CUTS = 8  # requirements with seats up to which seats are modelled by cuts, not flows


@dataclass(frozen=True)
class _Vars:
    """Where the variables of :func:`_model` are: the counts (the first ones), the seats
    served and, when a group grows, the number of GPUs added."""

    counts: range
    seats: int
    extra: int = -1


def _model(problem: Problem, full: bool, grow: int | None = None) -> tuple[_Milp, _Vars]:
    """The counts with their rows (per group at most, ``full``: exactly, its GPUs; the group
    ``grow`` plus an integer variable) and a variable bounded by the seats they serve.

    With few requirements, seats are bounded by every cut of the flow network (max-flow
    min-cut): for every set J of requirements, ``seats <= demand(J) + instances of classes
    with a requirement outside J``, 2^k rows for k requirements; the solver handles this
    covering form better than flow variables. With more requirements, flow variables."""
    milp = _Milp()
    for col in problem.columns:
        milp.var(_INF if grow == col.group else float(problem.sizes[col.group]))
    counts = range(len(problem.columns))
    seats = milp.var(float(sum(problem.demand)))
    wanted = [j for j, need in enumerate(problem.demand) if need > 0]
    if len(wanted) <= _MOST_CUTS:
        every = sum(1 << j for j in wanted)
        cuts: set[tuple[int, tuple[tuple[int, int], ...]]] = set()
        for pick in range((1 << len(wanted)) - 1):  # every J but all requirements (the bound)
            inside = sum(1 << j for i, j in enumerate(wanted) if pick >> i & 1)
            base = sum(problem.demand[j] for j in wanted if inside >> j & 1)
            out = [
                sum(
                    n
                    for cls, n in zip(problem.classes, col.supply, strict=True)
                    if cls & every & ~inside
                )
                for col in problem.columns
            ]
            cuts.add((base, tuple((p, n) for p, n in enumerate(out) if n)))
        for base, terms in sorted(cuts):
            milp.row(-_INF, float(base), {seats: 1.0} | {p: -float(n) for p, n in terms})
    else:
        served: dict[int, float] = {seats: 1.0}
        per_req: list[dict[int, float]] = [{} for _ in problem.demand]
        for s, cls in enumerate(problem.classes):
            entries = {p: -float(col.supply[s]) for p, col in enumerate(problem.columns)}
            for j in wanted:
                if cls >> j & 1:
                    f = milp.var(float(problem.demand[j]))
                    entries[f] = per_req[j][f] = 1.0
                    served[f] = -1.0
            milp.row(-_INF, 0.0, entries)
        for j in wanted:
            milp.row(-_INF, float(problem.demand[j]), per_req[j])
        milp.row(-_INF, 0.0, served)
    extra = milp.var(float(sum(problem.demand)), cost=1.0) if grow is not None else -1
    for g, n in enumerate(problem.sizes):
        entries = {p: 1.0 for p, col in enumerate(problem.columns) if col.group == g}
        if g == grow:
            entries[extra] = -1.0
        milp.row(float(n) if full else -_INF, float(n), entries)
    return milp, _Vars(counts, seats, extra)


def _checked(
    problem: Problem, values: list[float], counts: range, full: bool, what: str
) -> Solution:
    x = _whole(values, counts, what)
    for g, n in enumerate(problem.sizes):
        used = sum(k for k, col in zip(x, problem.columns, strict=True) if col.group == g)
        if used > n or (full and used != n) or min(x, default=0) < 0:
            raise PlanSolverError(f"the solver's answer to {what} breaks a GPU count")
    return Solution(x, seats_served(problem, x), problem.cost(x))


def _most_seats(problem: Problem, time_limit: float) -> Solution:
    milp, var = _model(problem, full=False)
    milp.cost[var.seats] = -1.0
    answer = milp.run(time_limit, "the most seats")
    if answer is None:
        raise PlanSolverError("the solver found no plan at all (leaving every GPU unused is one)")
    sol = _checked(problem, answer[0], var.counts, False, "the most seats")
    _proven(-sol.seats, answer[1], "the most seats")
    return sol


def _least_cost(problem: Problem, seats: int, time_limit: float) -> Solution:
    milp, var = _model(problem, full=False)
    for p, col in enumerate(problem.columns):
        milp.cost[p] = float(col.cost)
    milp.lower[var.seats] = float(seats)
    answer = milp.run(time_limit, "the fewest stranded slices")
    if answer is None:
        raise PlanSolverError("the solver lost the plan with the most seats")
    sol = _checked(problem, answer[0], var.counts, False, "the fewest stranded slices")
    if sol.seats < seats:
        raise PlanSolverError("the solver's plan for the fewest stranded slices lost seats")
    _proven(sol.cost, answer[1], "the fewest stranded slices")
    return sol


def solve(problem: Problem, time_limit: float = TIME_LIMIT_S) -> Solution:
    """Counts (at most each group's GPUs) serving the most seats, and among those the least
    cost: two MILPs, the second skipped when the first plan costs nothing."""
    if not problem.columns:
        return Solution((), 0, 0)
    first = _most_seats(problem, time_limit)
    if first.cost == 0:
        return first
    return _least_cost(problem, first.seats, time_limit)


def reaches(problem: Problem, seats: int, time_limit: float = TIME_LIMIT_S) -> bool:
    """Whether some counts serve ``seats`` seats (one MILP: the most seats)."""
    if seats <= 0:
        return True
    return bool(problem.columns) and _most_seats(problem, time_limit).seats >= seats


def fewest_keys(
    problem: Problem,
    keys: tuple[int, ...],
    start: tuple[int, ...],
    time_limit: float = TIME_LIMIT_S,
) -> tuple[int, ...]:
    """Column counts giving every GPU a column, serving at least the seats of the plan
    ``start`` (which gives every GPU a column) at no more cost, with the fewest distinct
    ``keys`` (``keys[p]`` is column p's key; a key's columns belong to one group).

    One binary variable per key, ``x[p] <= GPUs of the group * y[key(p)]``; minimise the sum.
    Skipped when ``start`` already uses one key per group with GPUs (no plan uses fewer)."""
    used = {keys[p] for p, n in enumerate(start) if n}
    if len(used) <= sum(1 for n in problem.sizes if n):
        return start
    seats, cost = seats_served(problem, start), problem.cost(start)
    milp, var = _model(problem, full=True)
    milp.lower[var.seats] = float(seats)
    milp.row(-_INF, float(cost), {p: float(col.cost) for p, col in enumerate(problem.columns)})
    flags = {k: milp.var(1.0, cost=1.0) for k in sorted(set(keys))}
    for p, col in enumerate(problem.columns):
        milp.row(-_INF, 0.0, {p: 1.0, flags[keys[p]]: -float(problem.sizes[col.group])})
    what = "the fewest distinct layouts"
    answer = milp.run(time_limit, what)
    if answer is None:
        raise PlanSolverError("the solver lost the plan with the fewest stranded slices")
    sol = _checked(problem, answer[0], var.counts, True, what)
    fewest = len({keys[p] for p, n in enumerate(sol.counts) if n})
    if sol.seats < seats or sol.cost > cost or fewest > len(used):
        raise PlanSolverError(f"the solver's answer to {what} lost seats or layouts")
    _proven(fewest, answer[1], what)
    return sol.counts


@functools.lru_cache(maxsize=1024)
def least_extra(
    problem: Problem, group: int, most: int | None = None, time_limit: float = TIME_LIMIT_S
) -> int | None:
    """The fewest GPUs added to ``group`` for the counts to serve every seat (known to be at
    most ``most``, if given); None when no number does. Remembered: models whose setups look
    alike give the same programme."""
    if not any(problem.demand):
        return 0
    served = 0  # requirements some column of a group that may have GPUs can serve
    for col in problem.columns:
        if not problem.sizes[col.group] and col.group != group:
            continue
        for cls, n in zip(problem.classes, col.supply, strict=True):
            served |= cls if n else 0
    if any(need > 0 and not served >> j & 1 for j, need in enumerate(problem.demand)):
        return None
    milp, var = _model(problem, full=False, grow=group)
    milp.lower[var.seats] = float(sum(problem.demand))
    if most is not None:
        milp.upper[var.extra] = min(milp.upper[var.extra], float(most))
    what = "the fewest extra GPUs"
    answer = milp.run(time_limit, what)
    if answer is None:
        return None
    extra = _whole(answer[0], range(var.extra, var.extra + 1), what)[0]
    grown = tuple(n + extra if g == group else n for g, n in enumerate(problem.sizes))
    sol = _checked(
        Problem(problem.classes, problem.demand, grown, problem.columns),
        answer[0],
        var.counts,
        False,
        what,
    )
    if sol.seats < sum(problem.demand):
        raise PlanSolverError(f"the solver's answer to {what} does not serve every seat")
    _proven(extra, answer[1], what)
    return extra
