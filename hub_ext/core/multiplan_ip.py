"""Exact integer search behind ``multiplan``: how many GPUs of each group use each column.

GPUs of one model are interchangeable, so a plan is a count per (group, column), where a column
is one way to set up a GPU: how many instances of each *class* it offers (a class is the set of
requirements an instance can serve, as a bitmask) and its cost (stranded slices). The seats served
are the maximum flow from classes to requirements, which by max-flow/min-cut is

    seats(counts) = min over cuts J of ( demand(J) + instances of classes not inside J ),

where only cuts that are unions of classes matter.

The search is lexicographic: first the most seats, then, among plans with that many seats, the
least cost. Each phase is a branch and bound over the counts. Every node solves the linear
relaxation with a dense simplex in floating point, but pruning never trusts floating point: the
simplex's duals are rounded to integers over a power of two and plugged into the Lagrangian
relaxation of the class rows (and, in the second phase, of the "at least that many seats" row),
which bounds the node from above for *any* non-negative multipliers and is evaluated in exact
integer arithmetic. Incumbents come from rounding the relaxation down, a greedy fill and one-GPU
swaps, all evaluated exactly. Branching until every node is pruned makes the result exact.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

_EPS = 1e-9
_SCALE = 1 << 40  # denominator of the rounded Lagrange multipliers
_ROUNDS = 6  # rounds of cutting planes at the root
_MOVES = 64  # single-GPU moves tried per heuristic solution

Bounds = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Column:
    """One GPU of ``group`` set up one way: instances per class (``Problem.classes``) and cost."""

    group: int
    supply: tuple[int, ...]
    cost: int


@dataclass(frozen=True)
class Problem:
    """Give every GPU of every group a column or leave it unused (no seats, cost 0).

    Costs are relative to the cheapest column of each group (the caller gives an unused GPU that
    column, which serves at least nothing at the same cost), so they are non-negative.
    """

    classes: tuple[int, ...]
    demand: tuple[int, ...]
    sizes: tuple[int, ...]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Solution:
    """Column counts, the seats they serve and their cost."""

    counts: tuple[int, ...]
    seats: int
    cost: int


@dataclass(frozen=True)
class _Goal:
    """Maximise ``weight * seats - cost`` (cost ignored unless ``costed``) over plans with at
    least ``need`` seats; ``need`` > 0 only when it is the most seats any plan serves."""

    weight: int
    costed: bool
    need: int = 0

    def value(self, sol: Solution) -> int:
        return self.weight * sol.seats - (sol.cost if self.costed else 0)


@dataclass(frozen=True)
class _MinCut:
    """Min-cut form of the seats: ``min(base[J] + load[J])``, ``load = sum(n * delta[col])``."""

    base: tuple[int, ...]
    delta: tuple[tuple[int, ...], ...]

    def seats(self, load: tuple[int, ...]) -> int:
        return min(map(int.__add__, self.base, load))

    def load(self, counts: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        load = [0] * len(self.base)
        for n, delta in zip(counts, self.delta, strict=True):
            if n:
                load = [a + n * b for a, b in zip(load, delta, strict=True)]
        return tuple(load)


def _mincut(problem: Problem) -> _MinCut:
    unions = {0}
    for cls in problem.classes:
        unions |= {u | cls for u in unions}
    cuts = sorted(unions)
    base = tuple(sum(d for j, d in enumerate(problem.demand) if cut >> j & 1) for cut in cuts)
    delta = tuple(
        tuple(
            sum(a for a, cls in zip(col.supply, problem.classes, strict=True) if cls & ~cut)
            for cut in cuts
        )
        for col in problem.columns
    )
    return _MinCut(base, delta)


def seats_served(problem: Problem, counts: tuple[int, ...]) -> int:
    """Seats the given column counts serve."""
    cuts = _mincut(problem)
    return cuts.seats(cuts.load(counts))


@dataclass(frozen=True)
class Tableau:
    """Result of :func:`simplex`: values, row duals, basis, final tableau rows and objective."""

    x: list[float]
    duals: list[float]
    basis: list[int]
    rows: list[list[float]]
    value: float


def simplex(obj: list[float], rows: list[list[float]], rhs: list[float]) -> Tableau:
    """Maximise ``obj . x`` subject to ``rows . x <= rhs`` and ``x >= 0``.

    Returns the values and the row duals of the last basis, with the basis and the tableau
    (whose slack columns hold the inverse basis, used to derive cutting planes). Rows with a
    negative right-hand side start from an artificial variable with a large penalty (big M).
    Dantzig's rule, switching to Bland's rule after a run of degenerate pivots so that it cannot
    cycle.
    """
    m, n = len(rows), len(obj)
    arts = [i for i, b in enumerate(rhs) if b < 0]
    width = n + m + len(arts)
    big = 1e6 * (1.0 + max(map(abs, obj), default=0.0))
    tab: list[list[float]] = []
    for i, (row, b) in enumerate(zip(rows, rhs, strict=True)):
        sign = -1.0 if b < 0 else 1.0
        line = [sign * v for v in row] + [sign if k == i else 0.0 for k in range(m)]
        tab.append(line + [float(a == i) for a in arts] + [sign * b])
    z = [-c for c in obj] + [0.0] * m + [big] * len(arts) + [0.0]
    basis = list(range(n, n + m))
    for k, i in enumerate(arts):
        basis[i] = n + m + k
        z = [a - big * b for a, b in zip(z, tab[i], strict=True)]
    bland, stalled = False, 0
    for _ in range(50 * (width + 1)):
        if bland:
            enter = next((j for j in range(width) if z[j] < -_EPS), -1)
        else:
            enter = min(range(width), key=z.__getitem__, default=-1)
            if enter >= 0 and z[enter] >= -_EPS:
                enter = -1
        if enter < 0:
            break
        out, best = -1, math.inf
        for i in range(m):
            a = tab[i][enter]
            if a > _EPS:
                ratio = tab[i][-1] / a
                if ratio < best - _EPS or (ratio <= best + _EPS and basis[i] < basis[out]):
                    out, best = i, ratio
        if out < 0:
            break  # unbounded direction: cannot happen for the planner's bounded problems
        stalled = stalled + 1 if best <= _EPS else 0
        bland = bland or stalled > width
        piv = tab[out][enter]
        prow = [v / piv for v in tab[out]]
        tab[out] = prow
        for i in range(m):
            f = tab[i][enter]
            if i != out and f != 0.0:
                tab[i] = [a - f * b for a, b in zip(tab[i], prow, strict=True)]
        f = z[enter]
        z = [a - f * b for a, b in zip(z, prow, strict=True)]
        basis[out] = enter
    x = [0.0] * n
    for i, var in enumerate(basis):
        if var < n:
            x[var] = tab[i][-1]
    return Tableau(x, z[n : n + m], basis, tab, z[-1])


@dataclass(frozen=True)
class _System:
    """The constraints ``rows . v <= rhs`` over ``v`` = column counts then flows (class, req).

    Rows: one per class (flow out of a class <= instances), one per requirement (flow in <=
    demand), one per group (GPUs used <= GPUs), in the second phase the seat row (flow >=
    ``need``), then cutting planes. Group and requirement rows are kept in the Lagrangian bound;
    the others are relaxed with the duals of the linear relaxation.
    """

    flows: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, ...], ...]
    rhs: tuple[int, ...]

    def kept(self, problem: Problem) -> range:
        nclass = len(problem.classes)
        return range(nclass, nclass + len(problem.demand) + len(problem.sizes))

    def plus(self, cuts: list[tuple[tuple[int, ...], int]]) -> _System:
        return _System(
            self.flows, self.rows + tuple(c for c, _ in cuts), self.rhs + tuple(r for _, r in cuts)
        )


def _system(problem: Problem, goal: _Goal) -> _System:
    cols, nreq = problem.columns, len(problem.demand)
    flows = tuple(
        (s, j) for s, cls in enumerate(problem.classes) for j in range(nreq) if cls >> j & 1
    )
    rows: list[tuple[int, ...]] = []
    for s in range(len(problem.classes)):
        rows.append(tuple(-c.supply[s] for c in cols) + tuple(int(fs == s) for fs, _ in flows))
    for j in range(nreq):
        rows.append(tuple(0 for _ in cols) + tuple(int(fj == j) for _, fj in flows))
    for g in range(len(problem.sizes)):
        rows.append(tuple(int(c.group == g) for c in cols) + tuple(0 for _ in flows))
    rhs = [0] * len(problem.classes) + list(problem.demand) + list(problem.sizes)
    if goal.need:
        rows.append(tuple(0 for _ in cols) + tuple(-1 for _ in flows))
        rhs.append(-goal.need)
    return _System(flows, tuple(rows), tuple(rhs))


@dataclass(frozen=True)
class _Relaxed:
    """Linear relaxation at a node: values of the column counts then flows, duals of the system
    rows, the variables of the tableau (indices into those values) and the tableau itself."""

    point: list[float]
    duals: list[float]
    variables: list[int]
    tableau: Tableau


def _relax(
    problem: Problem, goal: _Goal, system: _System, bounds: Bounds, extra: int = -1
) -> _Relaxed | None:
    """Solve the relaxation at a node (None: infeasible node).

    With ``extra`` >= 0, group ``extra`` may grow by a variable number of GPUs, each costing 1
    (its value is appended to the column values).
    """
    lo, up = bounds
    cols = problem.columns
    ncol = len(cols)
    free = [p for p in range(ncol) if up[p] > lo[p]]
    variables = free + [ncol + f for f in range(len(system.flows))]
    seat_value = 0.0 if goal.need else float(goal.weight)
    obj = [-float(cols[p].cost) if goal.costed else 0.0 for p in free]
    obj += [seat_value] * len(system.flows)
    rows = [[float(row[v]) for v in variables] for row in system.rows]
    rhs = [
        float(b - sum(row[p] * lo[p] for p in range(ncol) if lo[p]))
        for row, b in zip(system.rows, system.rhs, strict=True)
    ]
    groups = system.kept(problem)[len(problem.demand) :]
    if any(rhs[i] < 0 for i in groups):
        return None
    for k, p in enumerate(free):
        if up[p] - lo[p] < rhs[groups[cols[p].group]]:
            rows.append([float(i == k) for i in range(len(variables))])
            rhs.append(float(up[p] - lo[p]))
    if extra >= 0:
        obj.append(-1.0)
        for row in rows:
            row.append(0.0)
        rows[groups[extra]][-1] = -1.0
    tab = simplex(obj, rows, rhs)
    point = [float(v) for v in lo] + [0.0] * len(system.flows) + ([0.0] if extra >= 0 else [])
    for k, v in enumerate(variables + ([len(point) - 1] if extra >= 0 else [])):
        point[v] += tab.x[k]
    return _Relaxed(point, tab.duals[: len(system.rows)], variables, tab)


def _gomory(system: _System, relaxed: _Relaxed, limit: int) -> list[tuple[tuple[int, ...], int]]:
    """Chvatal-Gomory cuts from the rows of the tableau whose basic variable is fractional.

    For any multipliers u, ``floor(u . A) z <= floor(u . b)`` holds for every non-negative
    integer z with ``A z = b`` (A: the rows with their slacks). Column counts are integers, and
    so may the flows be (an integral maximum flow always exists), so every variable and slack is
    an integer. The multipliers are a tableau row's inverse-basis part, rounded to fractions:
    whatever the rounding, the cut is valid; the slacks are then written back in terms of the
    variables, giving a cut with integer coefficients.
    """
    tab, nvar, m = relaxed.tableau, len(relaxed.variables), len(system.rows)
    found: list[tuple[float, tuple[tuple[int, ...], int]]] = []
    for i, var in enumerate(tab.basis):
        frac = tab.rows[i][-1] - math.floor(tab.rows[i][-1])
        if var >= nvar or not 0.01 < frac < 0.99:
            continue
        u = [Fraction(v).limit_denominator(1 << 12) for v in tab.rows[i][nvar : nvar + m]]
        coef = [0] * len(relaxed.point)
        for v in relaxed.variables:
            coef[v] = math.floor(
                sum(uk * row[v] for uk, row in zip(u, system.rows, strict=True) if uk)
            )
        rhs = math.floor(sum(uk * b for uk, b in zip(u, system.rhs, strict=True) if uk))
        for uk, row, b in zip(u, system.rows, system.rhs, strict=True):
            k = math.floor(uk)
            if k:
                coef = [c - k * a for c, a in zip(coef, row, strict=True)]
                rhs -= k * b
        if sum(c * x for c, x in zip(coef, relaxed.point, strict=True)) > rhs + 1e-6:
            found.append((abs(frac - 0.5), (tuple(coef), rhs)))
    found.sort(key=lambda fc: fc[0])
    return [cut for _, cut in found[:limit]]


def _bound(
    problem: Problem, goal: _Goal, system: _System, bounds: Bounds, duals: list[float], need: int
) -> tuple[int, Bounds]:
    """Exact upper bound (floored) on ``goal.value`` at a node, and the node's box tightened for
    plans worth at least ``need`` (reduced-cost fixing).

    Lagrangian relaxation of every row but the requirement and group rows, with the duals of
    the relaxation rounded to integers over ``_SCALE`` (any non-negative multipliers give a
    valid bound): each requirement then takes its best flow, and each group its most valuable
    columns within the box, up to a marginal value ``tau``. A plan worth ``need`` loses at most
    ``slack = bound - need`` against that, and every GPU put on a column worth less than ``tau``
    (or taken off one worth more) loses the difference, which caps how far each count can move.
    """
    lo, up = bounds
    cols, ncol = problem.columns, len(problem.columns)
    kept = system.kept(problem)
    seat = 0 if goal.need else goal.weight * _SCALE
    price = [-c.cost * _SCALE if goal.costed else 0 for c in cols] + [seat] * len(system.flows)
    total = 0
    for i, (row, b) in enumerate(zip(system.rows, system.rhs, strict=True)):
        q = max(0, round(duals[i] * _SCALE)) if math.isfinite(duals[i]) else 0
        if q and i not in kept:
            total += q * b
            price = [v - q * a for v, a in zip(price, row, strict=True)]
    best = [0] * len(problem.demand)
    for f, (_, j) in enumerate(system.flows):
        best[j] = max(best[j], price[ncol + f])
    total += sum(map(operator.mul, best, problem.demand))
    room = list(problem.sizes)
    members: list[list[int]] = [[] for _ in problem.sizes]
    for p, col in enumerate(cols):
        total += lo[p] * price[p]
        room[col.group] -= lo[p]
        members[col.group].append(p)
    taus = [0] * len(members)
    for g, group in enumerate(members):
        cap = room[g]
        for p in sorted(group, key=lambda p: -price[p]):
            if price[p] <= 0:
                break
            take = min(up[p] - lo[p], cap)
            total += take * price[p]
            cap -= take
            if cap == 0:  # the group is full: this column's value is the margin
                taus[g] = price[p]
                break
    base = goal.weight * goal.need  # second phase: value = weight * need - cost
    slack = total - (need - base) * _SCALE
    new_lo, new_up = list(lo), list(up)
    if slack >= 0:
        for p, col in enumerate(cols):
            gap = price[p] - taus[col.group]
            if gap < 0:
                new_up[p] = min(up[p], lo[p] + slack // -gap)
            elif gap > 0:
                new_lo[p] = max(lo[p], up[p] - slack // gap)
    return base + total // _SCALE, (tuple(new_lo), tuple(new_up))


@dataclass(frozen=True)
class _Heuristic:
    """Integer solutions near a relaxation: round down, then move single GPUs (into a column,
    out of one, or from one column to another of its group) while that improves the score."""

    problem: Problem
    mincut: _MinCut
    goal: _Goal

    def score(self, load: tuple[int, ...], cost: int) -> tuple[int, int, int]:
        """Seats (capped at ``need`` in the second phase), then how far the cuts fall short of
        one more seat (so that moves count that do not yet add a seat), then cost."""
        seats = self.mincut.seats(load)
        cap = self.goal.need or seats + 1
        want = min(seats + 1, cap)
        short = sum(max(0, want - b - x) for b, x in zip(self.mincut.base, load, strict=True))
        return min(seats, cap), -short, -cost if self.goal.costed else 0

    def round(self, values: list[float], bounds: Bounds) -> Solution:
        lo, up = bounds
        cols, delta = self.problem.columns, self.mincut.delta
        x = [min(up[p], max(lo[p], math.floor(v + 1e-7))) for p, v in enumerate(values)]
        room = list(self.problem.sizes)
        for p, col in enumerate(cols):
            room[col.group] -= x[p]
        load = self.mincut.load(x)
        cost = sum(n * col.cost for n, col in zip(x, cols, strict=True))
        now = self.score(load, cost)
        for _ in range(_MOVES):
            best, move = now, (-1, -1)
            for o, i in self.moves(x, room, bounds):
                new = load
                if o >= 0:
                    new = tuple(map(int.__sub__, new, delta[o]))
                if i >= 0:
                    new = tuple(map(int.__add__, new, delta[i]))
                c = cost - (cols[o].cost if o >= 0 else 0) + (cols[i].cost if i >= 0 else 0)
                sc = self.score(new, c)
                if sc > best:
                    best, move, found = sc, (o, i), (new, c)
            if move == (-1, -1):
                break
            o, i = move
            for p, step in ((o, -1), (i, 1)):
                if p >= 0:
                    x[p] += step
                    room[cols[p].group] -= step
            load, cost = found
            now = best
        return Solution(tuple(x), self.mincut.seats(load), cost)

    def moves(self, x: list[int], room: list[int], bounds: Bounds) -> Iterator[tuple[int, int]]:
        lo, up = bounds
        cols = self.problem.columns
        for g in range(len(self.problem.sizes)):
            members = [p for p, col in enumerate(cols) if col.group == g]
            outs = [p for p in members if x[p] > lo[p]] + [-1]
            ins = [p for p in members if x[p] < up[p]] + [-1]
            for o in outs:
                for i in ins:
                    if o != i and (o >= 0 or i < 0 or room[g] > 0):
                        yield o, i


def _branch(values: list[float], bounds: Bounds) -> list[Bounds]:
    """Children of a node, the one to explore first last."""
    lo, up = bounds
    frac = [
        (abs(v - math.floor(v) - 0.5), p)
        for p, v in enumerate(values)
        if 1e-6 < v - math.floor(v) < 1 - 1e-6 and up[p] > lo[p]
    ]
    if frac:
        _, p = min(frac)
        cut = min(max(math.floor(values[p]), lo[p]), up[p] - 1)
        first_up = values[p] - cut >= 0.5
    else:  # relaxation integral but not proven optimal: split the widest range
        span, p = max((up[q] - lo[q], q) for q in range(len(lo)))
        if span == 0:
            return []
        cut, first_up = lo[p] + (span - 1) // 2, False
    down = (lo, (*up[:p], cut, *up[p + 1 :]))
    upper = ((*lo[:p], cut + 1, *lo[p + 1 :]), up)
    return [down, upper] if first_up else [upper, down]


def _node(
    problem: Problem, goal: _Goal, system: _System, node: Bounds, need: int
) -> tuple[_Relaxed, int, Bounds] | None:
    """Relaxation and bound of a node, re-solved while reduced-cost fixing tightens its box."""
    relaxed = _relax(problem, goal, system, node)
    for _ in range(4):
        if relaxed is None:
            return None
        bound, tight = _bound(problem, goal, system, node, relaxed.duals, need)
        if bound < need or tight == node:
            break
        node = tight
        relaxed = _relax(problem, goal, system, node)
    return (relaxed, bound, node) if relaxed is not None else None


def _search(problem: Problem, goal: _Goal, best: Solution, target: int = 0) -> Solution:
    """Cutting planes at the root, then best-bound-first branch and bound from incumbent
    ``best``; with ``target``, stop as soon as it is reached."""
    heuristic = _Heuristic(problem, _mincut(problem), goal)

    def offer(relaxed: _Relaxed, node: Bounds) -> None:
        nonlocal best
        cand = heuristic.round(relaxed.point[: len(problem.columns)], node)
        if cand.seats >= goal.need and goal.value(cand) > goal.value(best):
            best = cand

    root = (
        tuple(0 for _ in problem.columns),
        tuple(problem.sizes[c.group] for c in problem.columns),
    )
    system = _system(problem, goal)
    before, value = system, math.inf
    for _ in range(_ROUNDS):  # keep adding cuts while they lower the relaxation
        relaxed = _relax(problem, goal, system, root)
        if relaxed is None:
            return best
        if relaxed.tableau.value > value - 1e-7:
            system = before
            break
        offer(relaxed, root)
        need = max(goal.value(best) + 1, target)
        if _bound(problem, goal, system, root, relaxed.duals, need)[0] < need:
            return best
        cuts = _gomory(system, relaxed, 8)
        if not cuts:
            break
        before, value, system = system, relaxed.tableau.value, system.plus(cuts)
    heap: list[tuple[float, int, Bounds]] = [(-math.inf, 0, root)]
    for order in itertools.count(1):
        if not heap or (target and goal.value(best) >= target):
            break
        parent, _, node = heapq.heappop(heap)
        need = max(goal.value(best) + 1, target)
        solved = _node(problem, goal, system, node, need) if -parent >= need else None
        if solved is None or solved[1] < need:
            continue
        relaxed, bound, node = solved
        offer(relaxed, node)
        values = relaxed.point[: len(problem.columns)]
        for k, child in enumerate(_branch(values, node) if bound > goal.value(best) else []):
            heapq.heappush(heap, (-bound, -2 * order - k, child))
    return best


def _unused(problem: Problem) -> Solution:
    counts = tuple(0 for _ in problem.columns)
    return Solution(counts, seats_served(problem, counts), 0)


def solve(problem: Problem) -> Solution:
    """Counts serving the most seats, and among those the least cost."""
    first = _search(problem, _Goal(1, False), _unused(problem))
    spread = [0 for _ in problem.sizes]
    for col in problem.columns:
        spread[col.group] = max(spread[col.group], col.cost)
    weight = 1 + sum(map(operator.mul, spread, problem.sizes))
    return _search(problem, _Goal(weight, True, first.seats), first)


def reaches(problem: Problem, seats: int) -> bool:
    """Whether some counts serve ``seats`` seats."""
    return _search(problem, _Goal(1, False), _unused(problem), max(seats, 1)).seats >= seats


def least_extra(problem: Problem, group: int) -> float | None:
    """Least (fractional) number of GPUs added to ``group`` for the relaxation to serve all seats.

    Maximises ``2 * seats - added`` (each added GPU that helps serves at least one seat); None
    when the relaxation cannot serve every seat however many GPUs are added.
    """
    bounds = (
        tuple(0 for _ in problem.columns),
        tuple(sum(problem.demand) + problem.sizes[c.group] for c in problem.columns),
    )
    goal = _Goal(2, False)
    relaxed = _relax(problem, goal, _system(problem, goal), bounds, extra=group)
    assert relaxed is not None
    served = sum(relaxed.point[len(problem.columns) : -1])  # the flows
    return relaxed.point[-1] if served + 1e-6 >= sum(problem.demand) else None
