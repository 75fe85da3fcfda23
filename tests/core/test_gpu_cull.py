"""The GPU idle culler's decision: which idle slice holders to stop for waiting students."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub_ext.core.admission.model import EntryKey, UserName
from hub_ext.core.capacity.model import SliceType
from hub_ext.core.cull import (
    CullPolicy,
    Freed,
    GpuServer,
    ServerActivity,
    Waiter,
    plan_culls,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SMALL, BIG = SliceType("1g.10gb"), SliceType("2g.20gb")
POLICY = CullPolicy(timedelta(minutes=15))


def key(user: str, server: str = "") -> EntryKey:
    return EntryKey(UserName(user), server)


def waiter(user: str, minutes_ago: float, *types: SliceType) -> Waiter:
    return Waiter(key(user), types or (SMALL,), NOW - timedelta(minutes=minutes_ago))


def holder(user: str, idle_minutes: float | None, slice_type: SliceType = SMALL) -> tuple:
    server = GpuServer(key(user), slice_type, f"jupyter-{user}")
    last = None if idle_minutes is None else NOW - timedelta(minutes=idle_minutes)
    return server, ServerActivity(key(user), last, NOW - timedelta(hours=3))


def plan(waiters: list[Waiter], holders: list[tuple], policy: CullPolicy = POLICY) -> list[str]:
    result = plan_culls(NOW, waiters, [h[0] for h in holders], [h[1] for h in holders], policy)
    return [o.key.user for o in result.orders]


def test_nobody_waiting_culls_nothing_even_when_idle() -> None:
    assert plan([], [holder("a", 120), holder("b", 300)]) == []


def test_longest_idle_first_and_no_more_than_waiting() -> None:
    holders = [holder("a", 20), holder("b", 90), holder("c", 40), holder("d", 5)]
    assert plan([waiter("w1", 3)], holders) == ["b"]
    assert plan([waiter("w1", 3), waiter("w2", 2)], holders) == ["b", "c"]
    # three waiters, but only three servers are over the timeout; "d" is active
    assert plan([waiter(f"w{i}", 3) for i in range(5)], holders) == ["b", "c", "a"]


def test_servers_under_the_timeout_are_kept() -> None:
    assert plan([waiter("w", 3)], [holder("a", 14.9), holder("b", 1)]) == []
    assert plan([waiter("w", 3)], [holder("a", 15)]) == ["a"]


def test_only_the_waited_for_slice_type_is_culled() -> None:
    holders = [holder("small", 60, SMALL), holder("big", 600, BIG)]
    assert plan([waiter("w", 3, SMALL)], holders) == ["small"]
    assert plan([waiter("w", 3, BIG)], holders) == ["big"]


def test_fallback_types_free_one_server_of_the_first_type_with_an_idle_one() -> None:
    holders = [holder("small", 5, SMALL), holder("big", 60, BIG)]
    result = plan_culls(
        NOW, [waiter("w", 3, SMALL, BIG)], [h[0] for h in holders], [h[1] for h in holders], POLICY
    )
    assert [(o.key.user, o.slice_type) for o in result.orders] == [("big", BIG)]
    assert result.waiting == {SMALL: 1, BIG: 1}


def test_pending_unready_or_unknown_servers_are_not_culled() -> None:
    server = GpuServer(key("a"), SMALL, "jupyter-a")
    idle = NOW - timedelta(hours=2)
    stopping = ServerActivity(key("a"), idle, idle, ready=False, pending="stop")
    assert plan_culls(NOW, [waiter("w", 3)], [server], [stopping], POLICY).orders == ()
    # the hub does not know the pod's server (no activity record): leave it alone
    assert plan_culls(NOW, [waiter("w", 3)], [server], [], POLICY).orders == ()


def test_a_server_that_was_never_active_counts_from_its_start() -> None:
    assert plan([waiter("w", 3)], [holder("a", None)]) == ["a"]


def test_named_servers_are_matched_by_user_and_server_name() -> None:
    server = GpuServer(key("a", "gpu"), SMALL, "jupyter-a--gpu")
    old = NOW - timedelta(hours=1)
    records = [ServerActivity(key("a"), NOW, NOW), ServerActivity(key("a", "gpu"), old, old)]
    orders = plan_culls(NOW, [waiter("w", 3)], [server], records, POLICY).orders
    assert [o.key for o in orders] == [key("a", "gpu")]


def test_min_queued_ignores_students_who_just_arrived() -> None:
    policy = CullPolicy(timedelta(minutes=15), min_queued=timedelta(seconds=30))
    assert plan([waiter("w", 0.2)], [holder("a", 60)], policy) == []
    assert plan([waiter("w", 1)], [holder("a", 60)], policy) == ["a"]


def test_reason_names_slice_type_idle_time_and_queue() -> None:
    holders = [holder("a", 75)]
    result = plan_culls(
        NOW, [waiter("w1", 3), waiter("w2", 1)], [h[0] for h in holders], [holders[0][1]], POLICY
    )
    (order,) = result.orders
    assert order.reason == (
        "GPU slice 1g.10gb idle for 75 min while 2 student(s) wait for 1g.10gb (freed for w1)"
    )
    assert order.pod_name == "jupyter-a"


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        CullPolicy(timedelta(0))
    with pytest.raises(ValueError, match="negative"):
        CullPolicy(timedelta(minutes=1), min_queued=timedelta(seconds=-1))


def test_slices_already_being_freed_serve_waiters_first() -> None:
    holders = [holder("a", 60), holder("b", 50)]
    servers = [h[0] for h in holders]
    records = [h[1] for h in holders]
    # a pod being deleted frees a slice: one waiter is served by it, the second gets "a"
    stopping = GpuServer(key("s"), SMALL, "jupyter-s", stopping=True)
    waiters = [waiter("w1", 5), waiter("w2", 4)]
    result = plan_culls(NOW, waiters, [*servers, stopping], records, POLICY)
    assert [o.key.user for o in result.orders] == ["a"]
    assert result.orders[0].for_waiter == key("w2")


def test_recent_culls_are_not_repeated_while_the_waiter_is_admitted() -> None:
    holders = [holder("a", 60), holder("b", 50)]
    servers, records = [h[0] for h in holders], [h[1] for h in holders]
    culled = Freed(key("x"), SMALL, NOW - timedelta(seconds=30))
    assert plan_culls(NOW, [waiter("w", 5)], servers, records, POLICY, [culled]).orders == ()
    # after the grace period the freed slice no longer counts
    old = Freed(key("x"), SMALL, NOW - timedelta(minutes=5))
    orders = plan_culls(NOW, [waiter("w", 5)], servers, records, POLICY, [old]).orders
    assert [o.key.user for o in orders] == ["a"]


def test_a_server_the_hub_is_stopping_counts_as_freeing() -> None:
    server, _ = holder("a", 60)
    other, other_record = holder("b", 60)
    old = NOW - timedelta(hours=1)
    stopping = ServerActivity(key("a"), old, old, ready=False, pending="stop")
    orders = plan_culls(NOW, [waiter("w", 5)], [server, other], [stopping, other_record], POLICY)
    assert orders.orders == ()


GPU_POLICY = CullPolicy(timedelta(minutes=15), gpu_idle_timeout=timedelta(minutes=30))


def test_an_idle_gpu_is_culled_even_with_an_active_browser_tab() -> None:
    from hub_ext.core.cull import GpuIdle

    tab_open = [holder("a", 1), holder("b", 2)]  # both active in the hub a minute ago
    servers, activity = [h[0] for h in tab_open], [h[1] for h in tab_open]
    gpu = [GpuIdle(key("a"), timedelta(minutes=45)), GpuIdle(key("b"), None)]
    result = plan_culls(NOW, [waiter("w", 3)], servers, activity, GPU_POLICY, (), gpu)
    assert [o.key.user for o in result.orders] == ["a"]
    assert "45 min" in result.orders[0].reason
    # idle, but not for the whole GPU timeout yet (it started 20 minutes ago): kept
    young = [GpuIdle(key("a"), timedelta(minutes=20)), GpuIdle(key("b"), None)]
    assert plan_culls(NOW, [waiter("w", 3)], servers, activity, GPU_POLICY, (), young).orders == ()


def test_a_busy_gpu_keeps_a_server_the_hub_thinks_idle() -> None:
    from hub_ext.core.cull import GpuIdle

    idle_tab = [holder("a", 90), holder("b", 60)]
    servers, activity = [h[0] for h in idle_tab], [h[1] for h in idle_tab]
    gpu = [GpuIdle(key("a"), None)]  # a trains with the tab closed; b has no GPU data
    result = plan_culls(
        NOW, [waiter("w1", 3), waiter("w2", 2)], servers, activity, GPU_POLICY, (), gpu
    )
    assert [o.key.user for o in result.orders] == ["b"]  # b by the hub rule
    # without a GPU timeout in the policy the GPU data is not looked at
    result = plan_culls(NOW, [waiter("w1", 3)], servers, activity, POLICY, (), gpu)
    assert [o.key.user for o in result.orders] == ["a"]


def test_gpu_idle_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="GPU idle timeout"):
        CullPolicy(timedelta(minutes=15), gpu_idle_timeout=timedelta(0))
