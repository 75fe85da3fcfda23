"""Exact integer search behind ``multiplan``: how many GPUs of each group use each column.

Lexicographic: first the most seats, then the least cost among plans with that many seats. Each
phase is a best-first branch and bound over the column counts, with Gomory cuts at the root.
Relaxations (``multiplan_lp``) are solved in floating point, but pruning never trusts floating
point: duals are rounded and plugged into a Lagrangian relaxation, an upper bound for *any*
non-negative multipliers, computed in exact integer arithmetic; cuts are derived in exact rational
arithmetic. So the result is exact. See ``docs/explanation/mig-planner.md``.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass

from hub_ext.core.multiplan_lp import (
    Bounds,
    Goal,
    MinCut,
    Problem,
    Relaxed,
    Solution,
    System,
    gomory,
    mincut,
    relax,
    seats_served,
    system,
)

_SCALE = 1 << 40  # denominator of the rounded Lagrange multipliers
_ROUNDS = 6  # rounds of cutting planes at the root
_MOVES = 64  # single-GPU moves tried per heuristic solution
PROOF_NODES = 200  # nodes a "can these GPUs serve that many seats?" search may visit


def _bound(
    problem: Problem, goal: Goal, system: System, bounds: Bounds, duals: list[float], need: int
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
    mincut: MinCut
    goal: Goal

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
        cost = self.problem.cost(x)
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
    ``target``, it stops as soon as a plan reaches it; with a ``limit``, after that many nodes
    (``complete`` then tells whether the search space was exhausted)."""

    def __init__(
        self, problem: Problem, goal: Goal, best: Solution, target: int, limit: int = 0
    ) -> None:
        self.problem, self.goal, self.best, self.target = problem, goal, best, target
        self.limit, self.complete = limit, True
        self.heuristic = _Heuristic(problem, mincut(problem), goal)
        self.system = system(problem, goal)
        self.root = (
            (0,) * len(problem.columns),
            tuple(problem.sizes[c.group] for c in problem.columns),
        )

    def need(self) -> int:
        """The least value worth finding."""
        return max(self.goal.value(self.best) + 1, self.target)

    def visit(self, node: Bounds, fix: bool) -> tuple[Relaxed, int, Bounds] | None:
        """Relaxation and bound of a node (None: nothing worth finding there), re-solved while
        reduced-cost fixing (``fix``) tightens its box; offers the node's rounding as a plan."""
        need, goal = self.need(), self.goal
        relaxed = relax(self.problem, goal, self.system, node)
        for _ in range(4 if fix else 1):
            if relaxed is None:
                return None
            bound, tight = _bound(self.problem, goal, self.system, node, relaxed.duals, need)
            if bound < need or tight == node or not fix:
                break
            node, relaxed = tight, relax(self.problem, goal, self.system, tight)
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
            cuts = [] if full else gomory(self.system, relaxed, 8)
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
            if self.limit and order > self.limit:
                self.complete = False
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


def _weight(problem: Problem) -> int:
    """A seat's worth in the cost phase: more than any difference in cost between plans."""
    spread = [0 for _ in problem.sizes]
    for col in problem.columns:
        spread[col.group] = max(spread[col.group], col.cost)
    return 1 + sum(s * n for s, n in zip(spread, problem.sizes, strict=True))


def _reach(problem: Problem, seats: int, limit: int) -> tuple[Solution, bool]:
    """The best plan a search for ``seats`` seats found (it stops once one reaches them), and
    whether that search was complete (``limit``: nodes at most, 0 for no limit)."""
    search = _Search(problem, Goal(1, False), _unused(problem), max(seats, 1), limit)
    return search.run(), search.complete


def solve(problem: Problem) -> Solution:
    """Counts serving the most seats, and among those the least cost."""
    first = _Search(problem, Goal(1, False), _unused(problem), 0).run()
    weight = _weight(problem)
    return _Search(problem, Goal(weight, True, first.seats), first, 0).run()


@dataclass(frozen=True)
class Attempt:
    """What :func:`attempt` found: counts reaching the target, or None and whether that none
    exists is proven (``complete``)."""

    found: Solution | None
    complete: bool


def attempt(problem: Problem, seats: int, cost: int, limit: int = 0) -> Attempt:
    """Counts serving at least ``seats`` seats at a cost of at most ``cost``, each of the two
    searches (seats, then cost) visiting at most ``limit`` nodes (0: no limit)."""
    best, complete = _reach(problem, seats, limit)
    if best.seats < seats:
        return Attempt(None, complete)
    if best.cost <= cost:
        return Attempt(best, True)
    weight = _weight(problem)
    second = _Search(problem, Goal(weight, True, seats), best, weight * seats - cost, limit)
    best = second.run()
    if best.seats >= seats and best.cost <= cost:
        return Attempt(best, True)
    return Attempt(None, second.complete)


@functools.lru_cache(maxsize=1024)
def reaches(problem: Problem, seats: int, limit: int = 0) -> bool | None:
    """Whether some counts serve ``seats`` seats; None when a search limited to ``limit`` nodes
    neither found such counts nor ruled them out (remembered: the planner asks again for models
    whose layouts look alike)."""
    best, complete = _reach(problem, seats, limit)
    if best.seats >= seats:
        return True
    return False if complete else None


@functools.lru_cache(maxsize=256)
def least_extra(problem: Problem, group: int) -> float | None:
    """Least (fractional) number of GPUs added to ``group`` for the relaxation to serve all
    seats, maximising ``2 * seats - added`` (a useful GPU serves at least one seat); None when
    no number of added GPUs does."""
    bounds = (
        (0,) * len(problem.columns),
        (sum(problem.demand) + max(problem.sizes, default=0),) * len(problem.columns),
    )
    goal = Goal(2, False)
    relaxed = relax(problem, goal, system(problem, goal), bounds, extra=group)
    assert relaxed is not None
    served = sum(relaxed.point[len(problem.columns) : -1])  # the flows
    return relaxed.point[-1] if served + 1e-6 >= sum(problem.demand) else None
