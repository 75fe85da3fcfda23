"""Incremental capacity: the answer of :func:`compute_capacity`, kept up to date per event.

Each node's counts depend only on the node and on the GPU resources its bound pods request, so an
event touches one node: its old counts are taken out of the zone and cluster totals, the change
is applied, and its new counts are put back. A pod event costs O(resources of the pod + slice
types of its node), independent of the cluster's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub_ext.core.capacity.model import (
    Capacity,
    CountMap,
    Node,
    Pod,
    PodState,
    PodUid,
    SliceCount,
    SliceType,
    node_counts,
    pod_gpu_requests,
    pod_in_flight_type,
    pod_state,
)


@dataclass(frozen=True)
class _Holding:
    """What a pod currently contributes: resources on a node, or an in-flight slice type."""

    state: PodState
    node: str | None
    requests: tuple[tuple[str, int], ...]
    flight_type: SliceType | None


_NOTHING = _Holding(PodState.NONE, None, (), None)
_ZERO = SliceCount()


class CapacityIndex:
    """Nodes and pods in, free slices out; every query equals a full recomputation."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._pods: dict[PodUid, _Holding] = {}
        self._used: dict[str, dict[str, int]] = {}
        self._counts: dict[str, dict[SliceType, SliceCount]] = {}
        self._zones: dict[str, dict[SliceType, SliceCount]] = {}
        self._totals: dict[SliceType, SliceCount] = {}
        self._in_flight: dict[SliceType, int] = {}

    # -- events ---------------------------------------------------------------------------------

    def update_node(self, node: Node) -> None:
        """Add a node or replace it (labels, allocatable, readiness, zone may all change)."""
        self._retract(node.name)
        self._nodes[node.name] = node
        self._publish(node.name)

    def remove_node(self, name: str) -> None:
        """Forget a node; pods bound to it keep their requests in case it comes back."""
        self._retract(name)
        self._nodes.pop(name, None)

    def add_pod(self, pod: Pod) -> None:
        """Add a pod or replace the one with the same uid."""
        self.remove_pod(pod.uid)
        state = pod_state(pod)
        if state is PodState.NONE:
            return
        holding = _Holding(
            state,
            pod.node if state is PodState.BOUND else None,
            pod_gpu_requests(pod),
            pod_in_flight_type(pod) if state is PodState.IN_FLIGHT else None,
        )
        self._pods[pod.uid] = holding
        self._apply(holding, +1)

    update_pod = add_pod

    def remove_pod(self, uid: PodUid) -> None:
        holding = self._pods.pop(uid, _NOTHING)
        if holding.state is not PodState.NONE:
            self._apply(holding, -1)

    # -- queries --------------------------------------------------------------------------------

    def free_by_type(self) -> dict[SliceType, int]:
        types = sorted(set(self._totals) | set(self._in_flight))
        return {
            t: max(0, self._totals.get(t, SliceCount()).free - self._in_flight.get(t, 0))
            for t in types
        }

    def free(self, slice_type: str, *, zone: str | None = None, node: str | None = None) -> int:
        key = SliceType(slice_type)
        if node is not None:
            return self._counts.get(node, {}).get(key, SliceCount()).free
        if zone is not None:
            return self._zones.get(zone, {}).get(key, SliceCount()).free
        return max(0, self._totals.get(key, SliceCount()).free - self._in_flight.get(key, 0))

    def totals(self) -> dict[SliceType, SliceCount]:
        return dict(self._totals)

    def snapshot(self) -> Capacity:
        """A frozen copy, equal to ``compute_capacity`` over the same nodes and pods."""
        by_node: dict[str, CountMap] = {n: dict(c) for n, c in self._counts.items() if c}
        by_zone: dict[str, CountMap] = {z: dict(c) for z, c in self._zones.items() if c}
        return Capacity(by_node, by_zone, {t: n for t, n in self._in_flight.items() if n})

    # -- internals ------------------------------------------------------------------------------

    def _apply(self, holding: _Holding, sign: int) -> None:
        if holding.state is PodState.IN_FLIGHT:
            assert holding.flight_type is not None
            qty = sum(q for _, q in holding.requests)
            left = self._in_flight.get(holding.flight_type, 0) + sign * qty
            if left:
                self._in_flight[holding.flight_type] = left
            else:
                self._in_flight.pop(holding.flight_type, None)
            return
        assert holding.node is not None
        node = holding.node
        known = node in self._nodes
        if known:
            self._retract(node)
        used = self._used.setdefault(node, {})
        for resource, qty in holding.requests:
            left = used.get(resource, 0) + sign * qty
            if left:
                used[resource] = left
            else:
                used.pop(resource, None)
        if not used:
            del self._used[node]
        if known:
            self._publish(node)

    def _retract(self, name: str) -> None:
        counts = self._counts.pop(name, None)
        if not counts:
            return
        zone = self._zones[self._nodes[name].zone]
        for slice_type, c in counts.items():
            zone[slice_type] = _minus(zone[slice_type], c)
            self._totals[slice_type] = _minus(self._totals[slice_type], c)
            if zone[slice_type] == SliceCount():
                del zone[slice_type]
            if self._totals[slice_type] == SliceCount():
                del self._totals[slice_type]
        if not zone:
            del self._zones[self._nodes[name].zone]

    def _publish(self, name: str) -> None:
        node = self._nodes[name]
        counts = {
            t: c for t, c in node_counts(node, self._used.get(name, {})).items() if c != _ZERO
        }
        if not counts:
            return
        self._counts[name] = counts
        zone = self._zones.setdefault(node.zone, {})
        for slice_type, c in counts.items():
            zone[slice_type] = zone.get(slice_type, SliceCount()) + c
            self._totals[slice_type] = self._totals.get(slice_type, SliceCount()) + c


def _minus(a: SliceCount, b: SliceCount) -> SliceCount:
    return SliceCount(a.capacity - b.capacity, a.used - b.used, a.free - b.free)
