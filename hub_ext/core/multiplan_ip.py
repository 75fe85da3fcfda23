"""Exact integer search behind ``multiplan``: how many GPUs of each group use each column.

A column is one way to set up a GPU: its instances per *class* (the set of requirements an
instance can serve, a bitmask) and its cost (stranded slices). Seats served are the maximum flow
from classes to requirements: ``min over cuts J of demand(J) + instances of classes not in J``.

Lexicographic: first the most seats, then the least cost among plans with that many seats. Each
phase is a best-first branch and bound over the counts, with Gomory cuts at the root. Relaxations
are solved in floating point, but pruning never trusts floating point: duals are rounded and
plugged into a Lagrangian relaxation, an upper bound for *any* non-negative multipliers, computed
in exact integer arithmetic; cuts are derived in exact rational arithmetic. So the result is exact.
See ``docs/explanation/mig-planner.md``.
"""

from __future__ import annotations

import functools
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
    """Give every GPU of every group a column or leave it unused (no seats, cost 0): costs are
    relative to the group's cheapest column, which the caller gives to unused GPUs."""

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
    pairs = [list(zip(col.supply, problem.classes, strict=True)) for col in problem.columns]
    delta = tuple(tuple(sum(a for a, c in ac if c & ~cut) for cut in cuts) for ac in pairs)
    return _MinCut(base, delta)


def seats_served(problem: Problem, counts: tuple[int, ...]) -> int:
    """Seats the given column counts serve."""
    cuts = _mincut(problem)
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
class _System:
    """Rows ``rows . v <= rhs`` over v = column counts then flows (class, requirement): per
    class (flow out <= instances), per requirement (flow in <= demand), per group (GPUs), in the
    second phase the seat row (flow >= ``need``), then cuts."""

    flows: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, ...], ...]
    rhs: tuple[int, ...]

    def kept(self, problem: Problem) -> range:
        nclass = len(problem.classes)
        return range(nclass, nclass + len(problem.demand) + len(problem.sizes))

    def active(self, base: int, point: list[float]) -> _System:
        """Without the cuts (rows from ``base`` on) that do not bind at ``point``."""
        keep = [
            i
            for i, (row, b) in enumerate(zip(self.rows, self.rhs, strict=True))
            if i < base or sum(map(operator.mul, row, point)) > b - 1e-6
        ]
        return _System(
            self.flows, tuple(self.rows[i] for i in keep), tuple(self.rhs[i] for i in keep)
        )

    def plus(self, cuts: list[tuple[tuple[int, ...], int]]) -> _System:
        rows, rhs = zip(*cuts, strict=True)
        return _System(self.flows, self.rows + rows, self.rhs + rhs)


def _system(problem: Problem, goal: _Goal) -> _System:
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
    return _System(flows, tuple(rows), tuple(rhs))


@dataclass(frozen=True)
class _Relaxed:
    """A node's relaxation: values (counts then flows), system-row duals, tableau variables."""

    point: list[float]
    duals: list[float]
    variables: list[int]
    tableau: Tableau


def _relax(
    problem: Problem, goal: _Goal, system: _System, bounds: Bounds, extra: int = -1
) -> _Relaxed | None:
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
    return _Relaxed(point, tab.duals[: len(system.rows)], variables, tab)


def _gomory(system: _System, relaxed: _Relaxed, limit: int) -> list[tuple[tuple[int, ...], int]]:
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


def _bound(
    problem: Problem, goal: _Goal, system: _System, bounds: Bounds, duals: list[float], need: int
) -> tuple[int, Bounds]:
    """Exact upper bound (floored) on ``goal.value`` at a node, and its box tightened for plans
    worth ``need`` (reduced-cost fixing).

    Lagrangian relaxation of all rows but the requirement and group rows, multipliers = duals
    rounded to integers over ``_SCALE`` (any non-negative ones give a valid bound): each
    requirement takes its best flow, each group its most valuable columns in the box up to a
    marginal value ``tau``. A plan worth ``need`` loses at most ``bound - need`` against that;
    each GPU put on a column worth less than ``tau`` (or taken off one worth more) loses the
    difference, which caps how far each count can move."""
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
    """Children of a node, the one to explore first last: the largest fractional count, rounded
    up first (on these programmes that dives to whole plans quickly)."""
    lo, up = bounds
    frac = [
        (v, p)
        for p, v in enumerate(values)
        if 1e-6 < v - math.floor(v) < 1 - 1e-6 and up[p] > lo[p]
    ]
    if frac:
        _, p = max(frac)
        cut, first_up = min(max(math.floor(values[p]), lo[p]), up[p] - 1), True
    else:  # relaxation integral but not proven optimal: split the widest range
        span, p = max(((up[q] - lo[q], q) for q in range(len(lo))), default=(0, 0))
        if span == 0:
            return []
        cut, first_up = lo[p] + (span - 1) // 2, False
    down = (lo, (*up[:p], cut, *up[p + 1 :]))
    upper = ((*lo[:p], cut + 1, *lo[p + 1 :]), up)
    return [down, upper] if first_up else [upper, down]


class _Search:
    """One branch and bound run for ``goal``, improving the incumbent ``best``; with a
    ``target``, it stops as soon as a plan reaches it."""

    def __init__(self, problem: Problem, goal: _Goal, best: Solution, target: int) -> None:
        self.problem, self.goal, self.best, self.target = problem, goal, best, target
        self.heuristic = _Heuristic(problem, _mincut(problem), goal)
        self.system = _system(problem, goal)
        self.root = (
            (0,) * len(problem.columns),
            tuple(problem.sizes[c.group] for c in problem.columns),
        )

    def need(self) -> int:
        """The least value worth finding."""
        return max(self.goal.value(self.best) + 1, self.target)

    def visit(self, node: Bounds, fix: bool) -> tuple[_Relaxed, int, Bounds] | None:
        """Relaxation and bound of a node (None: nothing worth finding there), re-solved while
        reduced-cost fixing (``fix``) tightens its box; offers the node's rounding as a plan."""
        need, goal = self.need(), self.goal
        relaxed = _relax(self.problem, goal, self.system, node)
        for _ in range(4 if fix else 1):
            if relaxed is None:
                return None
            bound, tight = _bound(self.problem, goal, self.system, node, relaxed.duals, need)
            if bound < need or tight == node or not fix:
                break
            node, relaxed = tight, _relax(self.problem, goal, self.system, tight)
        if relaxed is None or bound < need:
            return None
        cand = self.heuristic.round(relaxed.point[: len(self.problem.columns)], node)
        if cand.seats >= goal.need and goal.value(cand) > goal.value(self.best):
            self.best = cand
        return relaxed, bound, node

    def done(self) -> bool:
        return bool(self.target) and self.goal.value(self.best) >= self.target

    def cut(self) -> bool:
        """Rounds of cuts at the root (they tighten the bound and help rounding find plans);
        keeps the cuts that bind. False when the root needs no search."""
        base = len(self.system.rows)
        for _ in range(_ROUNDS + 1):
            visited = self.visit(self.root, fix=False)
            if visited is None or self.done():
                return False
            relaxed = visited[0]
            full = len(self.system.rows) >= base + 8 * _ROUNDS
            cuts = [] if full else _gomory(self.system, relaxed, 8)
            if not cuts:
                break
            self.system = self.system.plus(cuts)
        self.system = self.system.active(base, relaxed.point)
        return True

    def run(self) -> Solution:
        if not self.cut():
            return self.best
        heap: list[tuple[float, int, Bounds]] = [(-math.inf, 0, self.root)]
        for order in itertools.count(1):
            if not heap or self.done():
                break
            parent, _, node = heapq.heappop(heap)
            visited = self.visit(node, fix=True) if -parent >= self.need() else None
            if visited is None:
                continue
            relaxed, bound, node = visited
            values = relaxed.point[: len(self.problem.columns)]
            for k, child in enumerate(_branch(values, node) if bound >= self.need() else []):
                heapq.heappush(heap, (-bound, -2 * order - k, child))
        return self.best


def _unused(problem: Problem) -> Solution:
    counts = tuple(0 for _ in problem.columns)
    return Solution(counts, seats_served(problem, counts), 0)


def solve(problem: Problem) -> Solution:
    """Counts serving the most seats, and among those the least cost."""
    first = _Search(problem, _Goal(1, False), _unused(problem), 0).run()
    spread = [0 for _ in problem.sizes]
    for col in problem.columns:
        spread[col.group] = max(spread[col.group], col.cost)
    weight = 1 + sum(map(operator.mul, spread, problem.sizes))
    return _Search(problem, _Goal(weight, True, first.seats), first, 0).run()


@functools.lru_cache(maxsize=1024)
def reaches(problem: Problem, seats: int) -> bool:
    """Whether some counts serve ``seats`` seats (remembered: the planner asks again for models
    whose layouts look alike)."""
    return _Search(problem, _Goal(1, False), _unused(problem), max(seats, 1)).run().seats >= seats


@functools.lru_cache(maxsize=256)
def least_extra(problem: Problem, group: int) -> float | None:
    """Least (fractional) number of GPUs added to ``group`` for the relaxation to serve all
    seats, maximising ``2 * seats - added`` (a useful GPU serves at least one seat); None when
    no number of added GPUs does."""
    bounds = (
        (0,) * len(problem.columns),
        (sum(problem.demand) + max(problem.sizes, default=0),) * len(problem.columns),
    )
    goal = _Goal(2, False)
    relaxed = _relax(problem, goal, _system(problem, goal), bounds, extra=group)
    assert relaxed is not None
    served = sum(relaxed.point[len(problem.columns) : -1])  # the flows
    return relaxed.point[-1] if served + 1e-6 >= sum(problem.demand) else None
