"""Data and linear programming behind the planner's integer search (``multiplan_ip``).

A column is one way to set up a GPU: its instances per *class* (the set of requirements an
instance can serve, a bitmask) and its cost (stranded slices). Seats served are the maximum flow
from classes to requirements, ``min over cuts J of demand(J) + instances of classes not in J``
(:class:`MinCut`). This module holds the problem data, that min-cut form, a dense simplex, the
relaxation of a search node and Gomory mixed-integer cuts derived from its tableau in exact
rational arithmetic. See ``docs/explanation/mig-planner.md``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from fractions import Fraction

_EPS = 1e-9

Bounds = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Column:
    """One GPU of ``group`` set up one way: instances per class (``Problem.classes``) and cost."""

    group: int
    supply: tuple[int, ...]
    cost: int


@dataclass(frozen=True)
class Problem:
    """Give every GPU of every group a column or leave it unused (no seats, cost 0): costs are
    relative to the group's cheapest column, which the caller gives to unused GPUs."""

    classes: tuple[int, ...]
    demand: tuple[int, ...]
    sizes: tuple[int, ...]
    columns: tuple[Column, ...]

    def cost(self, counts: tuple[int, ...] | list[int]) -> int:
        """The cost of the given column counts."""
        return sum(n * col.cost for n, col in zip(counts, self.columns, strict=True))

    def everyone(self, counts: tuple[int, ...]) -> tuple[int, ...]:
        """The counts with every unused GPU on its group's most used cost-0 column (seats can
        only grow, the cost stays)."""
        final = list(counts)
        for g, n in enumerate(self.sizes):
            cols = [p for p, col in enumerate(self.columns) if col.group == g]
            idle = n - sum(final[p] for p in cols)
            if idle:
                free = [p for p in cols if self.columns[p].cost == 0]
                final[max(free, key=lambda p: (final[p], -p))] += idle
        return tuple(final)


@dataclass(frozen=True)
class Solution:
    """Column counts, the seats they serve and their cost."""

    counts: tuple[int, ...]
    seats: int
    cost: int


@dataclass(frozen=True)
class Goal:
    """Maximise ``weight * seats - cost`` (cost ignored unless ``costed``) over plans with at
    least ``need`` seats; ``need`` > 0 only when it is the most seats any plan serves."""

    weight: int
    costed: bool
    need: int = 0

    def value(self, sol: Solution) -> int:
        return self.weight * sol.seats - (sol.cost if self.costed else 0)


@dataclass(frozen=True)
class MinCut:
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


def mincut(problem: Problem) -> MinCut:
    unions = {0}
    for cls in problem.classes:
        unions |= {u | cls for u in unions}
    cuts = sorted(unions)
    base = tuple(sum(d for j, d in enumerate(problem.demand) if cut >> j & 1) for cut in cuts)
    pairs = [list(zip(col.supply, problem.classes, strict=True)) for col in problem.columns]
    delta = tuple(tuple(sum(a for a, c in ac if c & ~cut) for cut in cuts) for ac in pairs)
    return MinCut(base, delta)


def seats_served(problem: Problem, counts: tuple[int, ...]) -> int:
    """Seats the given column counts serve."""
    cuts = mincut(problem)
    return cuts.seats(cuts.load(counts))


@dataclass(frozen=True)
class Tableau:
    """Result of :func:`simplex`: values, row duals, basis and final tableau rows."""

    x: list[float]
    duals: list[float]
    basis: list[int]
    rows: list[list[float]]


def simplex(obj: list[float], rows: list[list[float]], rhs: list[float]) -> Tableau:
    """Maximise ``obj . x`` subject to ``rows . x <= rhs`` and ``x >= 0`` (dense tableau; rows
    with a negative right-hand side start from a big-M artificial variable; Dantzig's rule, then
    Bland's after a run of degenerate pivots, so it cannot cycle). The tableau's slack columns
    hold the inverse basis, from which cuts are derived."""
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
        improving = [j for j in range(width) if z[j] < -_EPS]
        if not improving:
            break
        enter = improving[0] if bland else min(improving, key=z.__getitem__)
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
    return Tableau(x, z[n : n + m], basis, tab)


@dataclass(frozen=True)
class System:
    """Rows ``rows . v <= rhs`` over v = column counts then flows (class, requirement): per
    class (flow out <= instances), per requirement (flow in <= demand), per group (GPUs), in the
    second phase the seat row (flow >= ``need``), then cuts."""

    flows: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, ...], ...]
    rhs: tuple[int, ...]

    def kept(self, problem: Problem) -> range:
        nclass = len(problem.classes)
        return range(nclass, nclass + len(problem.demand) + len(problem.sizes))

    def active(self, base: int, point: list[float]) -> System:
        """Without the cuts (rows from ``base`` on) that do not bind at ``point``."""
        keep = [
            i
            for i, (row, b) in enumerate(zip(self.rows, self.rhs, strict=True))
            if i < base or sum(map(operator.mul, row, point)) > b - 1e-6
        ]
        return System(
            self.flows, tuple(self.rows[i] for i in keep), tuple(self.rhs[i] for i in keep)
        )

    def plus(self, cuts: list[tuple[tuple[int, ...], int]]) -> System:
        rows, rhs = zip(*cuts, strict=True)
        return System(self.flows, self.rows + rows, self.rhs + rhs)


def system(problem: Problem, goal: Goal) -> System:
    cols, nreq, nclass = problem.columns, len(problem.demand), len(problem.classes)
    flows = tuple((s, j) for s, c in enumerate(problem.classes) for j in range(nreq) if c >> j & 1)
    rows = [
        tuple(-c.supply[s] for c in cols) + tuple(int(f == s) for f, _ in flows)
        for s in range(nclass)
    ]
    rows += [(0,) * len(cols) + tuple(int(f == j) for _, f in flows) for j in range(nreq)]
    rows += [
        tuple(int(c.group == g) for c in cols) + (0,) * len(flows)
        for g in range(len(problem.sizes))
    ]
    rhs = [0] * nclass + list(problem.demand) + list(problem.sizes)
    if goal.need:
        rows.append((0,) * len(cols) + (-1,) * len(flows))
        rhs.append(-goal.need)
    return System(flows, tuple(rows), tuple(rhs))


@dataclass(frozen=True)
class Relaxed:
    """A node's relaxation: values (counts then flows), system-row duals, tableau variables."""

    point: list[float]
    duals: list[float]
    variables: list[int]
    tableau: Tableau


def relax(
    problem: Problem, goal: Goal, system: System, bounds: Bounds, extra: int = -1
) -> Relaxed | None:
    """Solve a node's relaxation (None: infeasible). With ``extra`` >= 0, group ``extra`` may
    grow by a variable number of GPUs costing 1 each (its value ends the point)."""
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
    return Relaxed(point, tab.duals[: len(system.rows)], variables, tab)


def gomory(system: System, relaxed: Relaxed, limit: int) -> list[tuple[tuple[int, ...], int]]:
    """Gomory mixed-integer cuts from tableau rows with a fractional basic variable.

    Multipliers u combine the rows and slacks into ``sum(a_j z_j) = b``; every z_j may be taken
    a non-negative integer (counts are, an integral maximum flow exists, rows have integer
    coefficients), so with ``f0 = frac(b) > 0``: ``sum(min(f_j/f0, (1-f_j)/(1-f0)) z_j) >= 1``.
    u (a tableau row's inverse-basis part) is rounded to fractions: any u gives a valid cut,
    computed exactly, written in the variables and scaled to integer coefficients."""
    tab, nvar, m = relaxed.tableau, len(relaxed.variables), len(system.rows)
    found: list[tuple[float, tuple[tuple[int, ...], int]]] = []
    for i, var in enumerate(tab.basis):
        value = tab.rows[i][-1]
        if var >= nvar or not 0.01 < value - math.floor(value) < 0.99:
            continue
        u = [Fraction(v).limit_denominator(1 << 12) for v in tab.rows[i][nvar : nvar + m]]
        b = sum((uk * r for uk, r in zip(u, system.rhs, strict=True) if uk), Fraction(0))
        f0 = b - math.floor(b)
        if not f0:
            continue

        def weight(a: Fraction, f0: Fraction = f0) -> Fraction:
            f = a - math.floor(a)
            return f / f0 if f <= f0 else (1 - f) / (1 - f0)

        coef = [Fraction(0)] * len(relaxed.point)
        for v in relaxed.variables:
            coef[v] = weight(
                sum(
                    (uk * row[v] for uk, row in zip(u, system.rows, strict=True) if uk), Fraction(0)
                )
            )
        rhs = Fraction(1)
        for uk, row, r in zip(u, system.rows, system.rhs, strict=True):
            w = weight(uk)
            if w:
                coef = [c - w * a for c, a in zip(coef, row, strict=True)]
                rhs -= w * r
        scale = math.lcm(*(c.denominator for c in coef), rhs.denominator)
        ints = [-int(c * scale) for c in coef] + [-int(rhs * scale)]
        div = math.gcd(*ints) or 1
        *cut, bound = (c // div for c in ints)
        if (
            max(map(abs, ints)) // div < 1 << 30
            and sum(c * x for c, x in zip(cut, relaxed.point, strict=True)) > bound + 1e-6
        ):
            found.append((abs(float(f0) - 0.5), (tuple(cut), bound)))
    found.sort(key=lambda fc: fc[0])
    return [cut for _, cut in found[:limit]]
