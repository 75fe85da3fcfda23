"""Third stage of the planner: the fewest distinct layouts among the best plans.

Every column belongs to one *key*, a layout of one group (GPU model); several columns may share a
key (a model's whole-GPU sharing columns all share "MIG disabled"). Given the most seats and the
least cost found by the first two stages, this finds column counts that give every GPU a column,
reach those seats at that cost and use the fewest keys.

Iterative deepening over the number of keys k, starting from the number of groups (each group
uses at least one): at level k a depth-first search picks each group's key set, group by group,
pruned by conditions every plan using exactly those keys meets (each key on at least one GPU, so
a lower bound on cost; per min cut of the seats, an upper bound on the load the keys carry); a
complete key set is decided exactly: directly when at most one group has a choice between two
columns (an integer interval), else by the exact integer search restricted to its columns. Every
smaller level was searched exhaustively, so the first level with a plan is the minimum.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass, replace

from hub_ext.core.multiplan_ip import attempt
from hub_ext.core.multiplan_lp import MinCut, Problem, mincut, seats_served, simplex

_SCALE = 1 << 20  # denominator of the rounded multipliers of learned conditions
_LEARNED = 256  # learned conditions kept at most
_UNSURE = 4  # key sets left undecided (their search hit its node limit) before giving up


@dataclass(frozen=True)
class _Test:
    """A condition every plan meets: ``sum(w[J] * load[J]) - w_cost * cost >= rhs``, summed over
    groups. ``keys[g][k]``: the most one GPU on key k of group g adds; ``rest[g]``: the most the
    groups from g on add."""

    keys: tuple[tuple[int, ...], ...]
    rest: tuple[int, ...]
    rhs: int

    def add(self, g: int, n: int, chosen: tuple[int, ...]) -> int:
        """The most group g (``n`` GPUs, each of the ``chosen`` keys on one at least) adds."""
        values = [self.keys[g][k] for k in chosen]
        if not values:
            return 0
        return sum(values) + (n - len(chosen)) * max(values)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _Levels:
    """The search for one target (seats, cost) over one problem."""

    def __init__(
        self, problem: Problem, keys: tuple[int, ...], target: tuple[int, int], limit: int
    ) -> None:
        self.problem, self.keys, self.limit = problem, keys, limit
        self.seats, self.cost = target
        self.unsure = 0  # key sets whose exact check hit its node limit
        self.cuts: MinCut = mincut(problem)
        self.binding = [i for i, b in enumerate(self.cuts.base) if self.seats - b > 0]
        self.need = [self.seats - self.cuts.base[i] for i in self.binding]
        self.groups: list[list[tuple[int, ...]]] = []  # per group, per key, its columns
        for g in range(len(problem.sizes)):
            by_key: dict[int, list[int]] = {}
            for p, col in enumerate(problem.columns):
                if col.group == g:
                    by_key.setdefault(keys[p], []).append(p)
            self.groups.append([tuple(cols) for cols in by_key.values()])
        self.most = [0] * (len(self.groups) + 1)  # keys the groups from g on can use at most
        self.used = [0] * (len(self.groups) + 1)  # ... and at least (one per group with GPUs)
        for g in reversed(range(len(self.groups))):
            self.most[g] = self.most[g + 1] + min(len(self.groups[g]), problem.sizes[g])
            self.used[g] = self.used[g + 1] + (problem.sizes[g] > 0)
        self.tests: list[_Test] = [self._test([0] * len(self.binding), 1)]
        for i in range(len(self.binding)):
            self.tests.append(self._test([int(k == i) for k in range(len(self.binding))], 0))
        self.given = len(self.tests)  # conditions from here on are learned

    def _test(self, weights: list[int], cost_weight: int) -> _Test:
        def value(p: int) -> int:
            delta = self.cuts.delta[p]
            gain = sum(w * delta[i] for w, i in zip(weights, self.binding, strict=True) if w)
            return gain - cost_weight * self.problem.columns[p].cost

        keys = tuple(tuple(max(map(value, cols)) for cols in group) for group in self.groups)
        rest = [0] * (len(keys) + 1)
        for g in reversed(range(len(keys))):
            rest[g] = rest[g + 1] + self.problem.sizes[g] * max(keys[g], default=0)
        rhs = sum(map(operator.mul, weights, self.need)) - cost_weight * self.cost
        return _Test(keys, tuple(rest), rhs)

    def plan(self, start: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
        """Counts with the fewest keys (every GPU on a column), starting from a plan ``start``
        that reaches the target; and whether they are proven the fewest."""
        used = len({self.keys[p] for p, n in enumerate(start) if n})
        for level in range(self.used[0], used):
            found = next(self._search(0, level, []), None)
            if found is not None:
                return found, not self.unsure
            if self.unsure >= _UNSURE:
                break
        return start, not self.unsure

    def _passes(self, chosen: list[tuple[int, ...]]) -> bool:
        """Whether the chosen keys of the first groups meet every condition."""
        g = len(chosen)
        sizes = self.problem.sizes
        return all(
            sum(t.add(h, sizes[h], keys) for h, keys in enumerate(chosen)) + t.rest[g] >= t.rhs
            for t in self.tests
        )

    def _search(
        self, g: int, budget: int, chosen: list[tuple[int, ...]]
    ) -> Iterator[tuple[int, ...]]:
        """Plans using exactly ``budget`` more keys in groups ``g`` on."""
        if g == len(self.groups):
            if budget == 0:
                found = self._decide(chosen)
                if found is not None:
                    yield found
            return
        n, rest = self.problem.sizes[g], self.used[g + 1]
        if n == 0:
            yield from self._search(g + 1, budget, [*chosen, ()])
            return
        low, high = max(1, budget - self.most[g + 1]), min(budget - rest, n)
        for size in range(low, high + 1):
            for keys in itertools.combinations(range(len(self.groups[g])), size):
                picked = [*chosen, keys]
                if self._passes(picked):
                    yield from self._search(g + 1, budget - size, picked)

    def _decide(self, chosen: list[tuple[int, ...]]) -> tuple[int, ...] | None:
        """Counts on the chosen keys' columns reaching the target, if any."""
        columns = [
            tuple(p for k in keys for p in self.groups[g][k]) for g, keys in enumerate(chosen)
        ]
        open_groups = [g for g, cols in enumerate(columns) if len(cols) > 1]
        if not open_groups:
            counts = [0] * len(self.problem.columns)
            for g, cols in enumerate(columns):
                if cols:
                    counts[cols[0]] = self.problem.sizes[g]
            return tuple(counts) if self._reaches(counts) else None
        if len(open_groups) == 1 and len(columns[open_groups[0]]) == 2:
            return self._interval(columns, open_groups[0])
        cost = [col.cost for col in self.problem.columns]
        cheapest = [min((cost[p] for p in group), default=0) for group in columns]
        room = self.cost - sum(map(operator.mul, cheapest, self.problem.sizes))
        if self._learn(chosen, columns, cheapest, room):
            return None
        return self._restricted(columns, cheapest, room)

    def _reaches(self, counts: list[int]) -> bool:
        load = self.cuts.load(counts)
        return self.problem.cost(counts) <= self.cost and all(
            load[i] >= need for i, need in zip(self.binding, self.need, strict=True)
        )

    def _interval(self, columns: list[tuple[int, ...]], open_group: int) -> tuple[int, ...] | None:
        """One group splits its GPUs between columns a and b: x on a, n - x on b. Every
        condition is linear in x, so the feasible x form an integer interval."""
        a, b = columns[open_group]
        n = self.problem.sizes[open_group]
        base = [0] * len(self.problem.columns)
        for g, group in enumerate(columns):
            if g != open_group and group:
                base[group[0]] = self.problem.sizes[g]
        base[b] = n
        load = self.cuts.load(base)
        cols = self.problem.columns
        lo, hi = 0, n
        # cost: fixed + x * (cost_a - cost_b) <= target
        lo, hi = _clip(lo, hi, cols[a].cost - cols[b].cost, self.cost - self.problem.cost(base))
        for i, need in zip(self.binding, self.need, strict=True):
            # load: load_i + x * (delta_a - delta_b) >= need, i.e. x * (delta_b - delta_a) <= ...
            slope = self.cuts.delta[b][i] - self.cuts.delta[a][i]
            lo, hi = _clip(lo, hi, slope, load[i] - need)
        if lo > hi:
            return None
        base[a], base[b] = lo, n - lo
        return tuple(base)

    def _learn(
        self,
        chosen: list[tuple[int, ...]],
        columns: list[tuple[int, ...]],
        cheapest: list[int],
        room: int,
    ) -> bool:
        """Whether the relaxation over these columns proves that none reaches the target; its
        multipliers then become one more condition, which also rules out similar key sets.

        Relaxation: maximise t with every binding cut's load >= need + t and cost <= target - t
        (costs relative to each group's cheapest column here, so GPUs may stay unassigned).
        Its duals weigh the cuts and the cost; rounded, they give a condition checked exactly.
        ``cheapest``: each group's cheapest chosen cost; ``room``: the target cost less what
        every GPU on those costs."""
        cols = self.problem.columns
        flat = [p for group in columns for p in group]
        rows: list[list[float]] = []
        rhs: list[float] = []
        for g, group in enumerate(columns):
            rows.append([float(p in group) for p in flat] + [0.0, 0.0])
            rhs.append(float(self.problem.sizes[g]))
        for i, need in zip(self.binding, self.need, strict=True):
            rows.append([-float(self.cuts.delta[p][i]) for p in flat] + [1.0, -1.0])
            rhs.append(-float(need))
        rows.append([float(cols[p].cost - cheapest[cols[p].group]) for p in flat] + [1.0, -1.0])
        rhs.append(float(room))
        tab = simplex([0.0] * len(flat) + [1.0, -1.0], rows, rhs)
        if tab.x[-2] - tab.x[-1] > -1e-6:
            return False
        duals = tab.duals[len(columns) :]
        weights = [max(0, round(d * _SCALE)) for d in duals[:-1]]
        test = self._test(weights, max(0, round(duals[-1] * _SCALE)))
        sizes = self.problem.sizes
        if sum(test.add(g, sizes[g], keys) for g, keys in enumerate(chosen)) >= test.rhs:
            return False  # rounding lost the proof: decide exactly
        if len(self.tests) < self.given + _LEARNED:
            self.tests.append(test)
        return True

    def _restricted(
        self, columns: list[tuple[int, ...]], cheapest: list[int], room: int
    ) -> tuple[int, ...] | None:
        """The exact search over the chosen columns only (costs relative to each group's
        cheapest chosen column, which unused GPUs then get), limited to ``limit`` nodes per
        search (0: no limit); a key set it cannot decide counts as unsure."""
        if self.unsure >= _UNSURE:
            return None
        keep = [p for cols in columns for p in cols]
        cols = self.problem.columns
        sub = replace(
            self.problem,
            columns=tuple(
                replace(cols[p], cost=cols[p].cost - cheapest[cols[p].group]) for p in keep
            ),
        )
        tried = attempt(sub, self.seats, room, self.limit)
        if tried.found is None:
            self.unsure += not tried.complete
            return None
        counts = [0] * len(cols)
        for p, k in zip(keep, sub.everyone(tried.found.counts), strict=True):
            counts[p] = k
        return tuple(counts) if self._reaches(counts) else None


def _clip(lo: int, hi: int, slope: int, room: int) -> tuple[int, int]:
    """Narrow [lo, hi] to the integers x with ``slope * x <= room``."""
    if slope > 0:
        return lo, min(hi, room // slope)
    if slope < 0:
        return max(lo, _ceil_div(room, slope)), hi
    return (lo, hi) if room >= 0 else (1, 0)


def fewest_keys(
    problem: Problem, keys: tuple[int, ...], start: tuple[int, ...], limit: int = 0
) -> tuple[tuple[int, ...], bool]:
    """Column counts giving every GPU a column, serving at least the seats of the plan ``start``
    (which gives every GPU a column) at no more cost, with the fewest distinct ``keys``
    (``keys[p]`` is column p's key; a key's columns belong to one group); and whether that is
    proven the fewest. With a ``limit``, each exact check of a key set may visit that many
    search nodes; when one cannot decide, the answer is the fewest keys found (at most those
    of ``start``) and not proven."""
    target = (seats_served(problem, start), problem.cost(start))
    return _Levels(problem, keys, target, limit).plan(start)
