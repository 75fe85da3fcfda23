"""The per-student GPU-hour budget: parsed from the policy file, holds back a student who used
today's hours with a message saying when it resets, counts finished and running sessions, and
shows each student's use in the admin view; the usage it reads survives the pod's deletion and
a restarted admission controller (the ConfigMap store on the devcluster)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from test_admission_helpers import T0, entry, minutes, running, state

from hub_ext.adapters.k8s.admission import AdmissionController
from hub_ext.adapters.k8s.objects import ANNOTATION_ENQUEUED
from hub_ext.adapters.k8s.overview import build_lab_overview
from hub_ext.adapters.k8s.usage import ConfigMapUsageStore
from hub_ext.core.admission.book import decide, rule_notes
from hub_ext.core.admission.messages import format_waiting
from hub_ext.core.admission.model import AdmissionInput, AdmissionPolicy, UserName, WaitReason
from hub_ext.core.admission.overview import AdmissionOverview
from hub_ext.core.admission.rules import parse_policy_rules
from hub_ext.core.admission.rules.budget import BudgetRule, parse_budgets
from hub_ext.core.admission.usage import UsageRecord
from hub_ext.core.manifests import PodRequest, build_pod
from hub_ext.core.profiles.model import GpuRequest
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.hub.admin_view import TEMPLATES

# T0 is 10:00 UTC; the budget day started at 00:00 and resets at midnight, 14 h from T0


def record(user: str, start: float, end: float, course: str = "ml-101") -> UsageRecord:
    """A finished session from ``start`` to ``end`` minutes relative to T0."""
    return UsageRecord(UserName(user), course, "1g.10gb", T0 + minutes(start), T0 + minutes(end))  # type: ignore[arg-type]


def budgeted(data: AdmissionInput, rule: BudgetRule, *usage: UsageRecord) -> AdmissionInput:
    return replace(data, policy=replace(data.policy, rules=(rule,)), usage=usage)


def test_the_budgets_section_is_parsed_with_clear_errors() -> None:
    rules = parse_policy_rules(
        {"budgets": {"gpu_hours_per_day": 4, "courses": {"cv-201": 1.5}}}, "policy.yaml"
    )
    (rule,) = rules.rules
    assert rule == BudgetRule(4.0, {"cv-201": 1.5}, 0)  # type: ignore[dict-item]
    assert parse_budgets({"reset_hour_utc": 6}).reset_hour == 6
    for bad, message in [
        ({"gpu_hours_per_day": 0}, "gpu_hours_per_day must be a positive number"),
        ({"gpu_hours_per_day": "4h"}, "gpu_hours_per_day must be a positive number"),
        ({"courses": {"ml-101": -1}}, "courses.ml-101 must be a positive number"),
        ({"courses": [1]}, "courses must map course slugs"),
        ({"reset_hour_utc": 24}, "reset_hour_utc must be a whole hour from 0 to 23"),
        ({"gpu_hours": 4}, "unknown key 'gpu_hours'; accepted: gpu_hours_per_day"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_policy_rules({"budgets": bad}, "policy.yaml")
    with pytest.raises(ValueError, match=r"policy\.yaml: budgets: must be a mapping"):
        parse_policy_rules({"budgets": 4}, "policy.yaml")


def test_a_student_who_used_todays_hours_waits_until_the_reset() -> None:
    rule = parse_budgets({"gpu_hours_per_day": 4})
    queue = [entry("ann", 1), entry("bob", 2)]
    # ann used 4 h today (two sessions), bob 3 h today and 5 h yesterday
    usage = [record("ann", -540, -360), record("ann", -300, -180), record("bob", -360, -180)]
    usage.append(record("bob", -900, -600))
    decision = decide(budgeted(state({"1g.10gb": 2}, queue), rule, *usage))
    assert [a.key.user for a in decision.admitted] == ["bob"]
    (wait,) = decision.waiting
    assert (wait.key.user, wait.reason, wait.position, wait.waiting) == (
        "ann",
        WaitReason.GPU_BUDGET,
        1,
        1,
    )
    assert wait.eta == timedelta(hours=14)
    assert format_waiting(wait) == (
        "Waiting for a 1g.10gb GPU slice: position 1 of 1 (about 14 h; you have used the 4 GPU "
        "hours a day; your budget resets at 00:00 UTC)"
    )
    # after midnight yesterday's use no longer counts
    tomorrow = replace(state({"1g.10gb": 2}, queue), now=T0 + timedelta(hours=14, minutes=1))
    assert len(decide(budgeted(tomorrow, rule, *usage)).admitted) == 2


def test_running_sessions_count_and_a_course_budget_counts_only_that_course() -> None:
    rule = parse_budgets({"courses": {"ml-101": 2}})
    # ann's other server has run in ml-101 for 2 h; cat used 3 h in cv-201 only
    data = state(
        {"1g.10gb": 3},
        [replace(entry("ann", 1), key=entry("ann").key._replace(server_name="two")), entry("cat")],
        [running("ann")],
    )
    decision = decide(budgeted(data, rule, record("cat", -240, -60, course="cv-201")))
    assert [a.key.user for a in decision.admitted] == ["cat"]
    (wait,) = decision.waiting
    assert "the 2 GPU hours a day of ml-101" in wait.detail
    lab_wide = parse_budgets({"gpu_hours_per_day": 3, "reset_hour_utc": 6})
    cat_only = state({"1g.10gb": 1}, [entry("cat")])
    (held,) = decide(budgeted(cat_only, lab_wide, record("cat", -200, -20, "cv-201"))).waiting
    assert "resets at 06:00 UTC" in held.detail and held.eta == timedelta(hours=20)


def test_the_admin_view_shows_each_students_use() -> None:
    rule = parse_budgets({"gpu_hours_per_day": 4, "courses": {"ml-101": 2}})
    data = budgeted(state({}, [], [running("ann")]), rule, record("bob", -90, -30))
    notes = {n.user: n.text for n in rule_notes(data)}
    assert notes == {
        "ann": "2.0 of 4 GPU h lab-wide; 2.0 of 2 GPU h in ml-101 today; resets at 00:00 UTC",
        "bob": "1.0 of 4 GPU h lab-wide; 1.0 of 2 GPU h in ml-101 today; resets at 00:00 UTC",
    }
    admission = AdmissionOverview(T0, (), (), (), (), (), rule_notes(data))
    page = DictLoader({"page.html": "<html>{% block main %}{% endblock main %}</html>"})
    loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), page])
    env = Environment(loader=loader, autoescape=True)
    html = env.get_template("labhub-admin.html").render(
        overview=build_lab_overview(T0, admission, [], []), generated="now", base_url="/hub/"
    )
    assert 'id="rule-notes"' in html and "2.0 of 2 GPU h in ml-101" in html


async def test_usage_survives_pod_deletion_and_a_restarted_controller(tmp_path: Path) -> None:
    node = {
        "name": "gpu-0",
        "zone": "room-a",
        "cpu": 64,
        "memory": "512Gi",
        "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": 2}},
    }
    lab = parse_cluster_config({"name": "budget", "nodes": [node]})
    budget = parse_budgets({"gpu_hours_per_day": 0.0005})  # 1.8 s

    def policy(_now: datetime) -> AdmissionPolicy:
        return AdmissionPolicy(rules=(budget,))

    async with (
        DevCluster(lab, tmp_path) as dev,
        ApiClient(configuration=Configuration(host=dev.api.url)) as api,
    ):
        core = CoreV1Api(api)
        first = AdmissionController(api, "default", policy, usage=_store(core))
        await first.start()
        try:
            await core.create_namespaced_pod("default", _pod("ann"))
            await _until(lambda: first.overview().holder("ann") is not None)
            await asyncio.sleep(2.5)  # ann's server uses up the budget
            await core.delete_namespaced_pod("jupyter-ann", "default", grace_period_seconds=0)
            await _until(lambda: bool(first.usage.records))
            await _until(lambda: first.usage._dirty is False)
        finally:
            await first.stop()
        restarted = AdmissionController(api, "default", policy, usage=_store(core))
        await restarted.start()
        try:
            await core.create_namespaced_pod("default", _pod("ann"))
            await core.create_namespaced_pod("default", _pod("bob"))
            await _until(lambda: restarted.status("ann") is not None)
            await _until(lambda: restarted.overview().holder("bob") is not None)
            wait = restarted.status("ann")
            assert wait is not None and wait.reason is WaitReason.GPU_BUDGET  # type: ignore[union-attr]
            assert "resets at 00:00 UTC" in format_waiting(wait)  # type: ignore[arg-type]
            (note,) = [n for n in restarted.overview().notes if n.user == "ann"]
            assert "lab-wide today" in note.text
        finally:
            await restarted.stop()


def _store(core: CoreV1Api) -> ConfigMapUsageStore:
    return ConfigMapUsageStore(core, "default")


async def _until(probe: object, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not probe():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def _pod(user: str) -> dict[str, object]:
    pod = build_pod(
        PodRequest(
            pod_name=f"jupyter-{user}",
            namespace="default",
            username=user,
            server_name="",
            course="ml-101",
            group=None,
            image="ignored",
            command=(sys.executable, "-c", "import time; time.sleep(120)"),
            port=8888,
            home_claim=f"claim-{user}",
            cpu_guarantee=0.01,
            cpu_limit=1,
            memory_guarantee=2**20,
            memory_limit=2**30,
            gpu=GpuRequest(("1g.10gb",)),
        )
    )
    pod["spec"]["volumes"] = []
    pod["spec"]["containers"][0]["volumeMounts"] = []
    pod["metadata"]["annotations"][ANNOTATION_ENQUEUED] = datetime.now(UTC).isoformat()
    return pod
