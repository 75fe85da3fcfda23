"""Which requirement each served seat goes to: a maximum flow from instance classes to
requirements for given column counts (augmenting paths, breadth first)."""

from __future__ import annotations

from hub_ext.core.multiplan_lp import Problem


def allocate(problem: Problem, counts: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """A maximum flow ``flow[class][requirement]`` for the column counts (augmenting paths)."""
    nclass, nreq = len(problem.classes), len(problem.demand)
    left = [
        sum(n * col.supply[s] for n, col in zip(counts, problem.columns, strict=True))
        for s in range(nclass)
    ]
    need = list(problem.demand)
    flow = [[0] * nreq for _ in range(nclass)]
    while True:
        via_class = [-1] * nreq  # class through which a requirement was reached
        via_req = [-2] * nclass  # requirement through which a class was reached (-1: source)
        queue = [s for s in range(nclass) if left[s] > 0]
        for s in queue:
            via_req[s] = -1
        end = -1
        while queue and end < 0:
            nxt: list[int] = []
            for s in queue:
                for j in range(nreq):
                    if not problem.classes[s] >> j & 1 or via_class[j] >= 0:
                        continue
                    via_class[j] = s
                    if need[j] > 0:
                        end = j
                        break
                    for t in range(nclass):
                        if flow[t][j] > 0 and via_req[t] == -2:
                            via_req[t] = j
                            nxt.append(t)
                if end >= 0:
                    break
            queue = nxt
        if end < 0:
            break
        path: list[tuple[int, int, int]] = []  # (class, requirement, +1 forward / -1 backward)
        j = end
        while True:
            s = via_class[j]
            path.append((s, j, 1))
            if via_req[s] < 0:
                break
            j = via_req[s]
            path.append((s, j, -1))
        start = path[-1][0]
        amount = min([left[start], need[end]] + [flow[s][j] for s, j, d in path if d < 0])
        for s, j, d in path:
            flow[s][j] += d * amount
        left[start] -= amount
        need[end] -= amount
    return tuple(tuple(row) for row in flow)
