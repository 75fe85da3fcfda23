"""Dealing a plan out: which requirement each served seat goes to (a maximum flow from instance
classes to requirements, augmenting paths, breadth first), the seats a plan serves checked
exactly with that flow, and which layout each GPU of a model gets (as many uniform nodes as
possible)."""

from __future__ import annotations

from hub_ext.core.mig.planner.model import Problem


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


def seats_served(problem: Problem, counts: tuple[int, ...] | list[int]) -> int:
    """Seats the column counts serve (the maximum flow, in exact integer arithmetic)."""
    return sum(map(sum, allocate(problem, tuple(counts))))


def spread(nodes: list[tuple[int, bool]], counts: list[int]) -> list[int]:
    """Which layout (index into ``counts``, GPUs per layout) each GPU gets, node after node.

    ``nodes``: per node its GPUs of this model and whether the node has no other GPUs (only such
    a node can be uniform, one layout for all its GPUs, so one conventional mig-parted config).
    Smallest nodes first, each takes whole from the layout with the most GPUs left that still
    fills it; with nodes of one size that makes as many nodes uniform as the counts allow. The
    GPUs left go to the other nodes in node order, most plentiful layout first.
    """
    left = list(counts)
    whole: dict[int, int] = {}
    for i in sorted(range(len(nodes)), key=lambda i: nodes[i][0]):
        size, alone = nodes[i]
        fits = [k for k in range(len(left)) if left[k] >= size]
        if alone and size and fits:
            k = max(fits, key=lambda k: (left[k], -k))
            whole[i] = k
            left[k] -= size
    rest = [
        k for k in sorted(range(len(left)), key=lambda k: (-left[k], k)) for _ in range(left[k])
    ]
    out: list[int] = []
    for i, (size, _) in enumerate(nodes):
        if i in whole:
            out += [whole[i]] * size
        else:
            out += rest[:size]
            rest = rest[size:]
    return out
