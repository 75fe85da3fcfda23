"""The admission rules' interface: a configured rule holds candidates back (whole entries or one
slice type, falling back to the next), sees this pass's admissions, and feeds the admin view;
the policy file's admission sections are parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from test_admission_helpers import G1, G2, T0, entry, minutes, running, state

from hub_ext.core.admission.book import decide, rule_notes
from hub_ext.core.admission.messages import format_waiting
from hub_ext.core.admission.model import QueueEntry, UserName, WaitReason
from hub_ext.core.admission.rules import (
    AdmissionRule,
    Hold,
    RuleContext,
    RuleNote,
    RulePass,
    parse_policy_rules,
    policy_keys,
    register_rule,
)
from hub_ext.core.admission.usage import UsageRecord, ended_sessions, used
from hub_ext.core.capacity.model import SliceType


@dataclass(frozen=True)
class Blocklist(AdmissionRule):
    """Holds named users back, and one slice type for everybody."""

    users: frozenset[str] = frozenset()
    no_type: str = ""
    name = "blocklist"

    def start(self, ctx: RuleContext) -> RulePass:
        return _BlockPass(self, [])

    def notes(self, ctx: RuleContext) -> tuple[RuleNote, ...]:
        return tuple(
            RuleNote(self.name, s.key.user, s.course, "running") for s in ctx.running.values()
        )


@dataclass
class _BlockPass(RulePass):
    rule: Blocklist
    taken: list[str]

    def hold(self, entry: QueueEntry) -> Hold | None:
        if entry.key.user in self.rule.users:
            return Hold(WaitReason.NO_FREE_SLICE, "you are on the list", timedelta(minutes=5))
        return None

    def hold_type(self, entry: QueueEntry, slice_type: SliceType) -> Hold | None:
        if slice_type == self.rule.no_type:
            return Hold(WaitReason.SLICE_TYPE_QUOTA, "0")
        return None

    def take(self, entry: QueueEntry, slice_type: SliceType) -> None:
        self.taken.append(entry.key.user)


def with_rules(data: object, *rules: AdmissionRule) -> object:
    return replace(data, policy=replace(data.policy, rules=rules))  # type: ignore[type-var]


def test_a_rule_holds_an_entry_with_its_reason_detail_and_eta() -> None:
    base = state({"1g.10gb": 2}, [entry("a", 1), entry("b", 2), entry("c", 3)])
    decision = decide(with_rules(base, Blocklist(frozenset({"b"}))))  # type: ignore[arg-type]
    assert [a.key.user for a in decision.admitted] == ["a", "c"]
    (wait,) = decision.waiting
    assert (wait.key.user, wait.position, wait.waiting) == ("b", 1, 1)
    assert wait.detail == "you are on the list" and wait.eta == minutes(5)


def test_a_slice_type_hold_falls_back_to_the_next_type() -> None:
    base = state({"1g.10gb": 1, "2g.20gb": 1}, [entry("a", types=("1g.10gb", "2g.20gb"))])
    decision = decide(with_rules(base, Blocklist(no_type=G1)))  # type: ignore[arg-type]
    assert [(a.key.user, a.slice_type) for a in decision.admitted] == [("a", G2)]
    only = state({"1g.10gb": 1}, [entry("a")])
    (wait,) = decide(with_rules(only, Blocklist(no_type=G1))).waiting  # type: ignore[arg-type]
    assert (wait.reason, wait.detail) == (WaitReason.SLICE_TYPE_QUOTA, "0")


def test_built_in_rules_run_first_and_the_quota_counts_this_pass() -> None:
    queue = [entry("a", 1), entry("b", 2), entry("c", 3)]
    decision = decide(state({"1g.10gb": 3}, queue, courses={"ml-101": 2}))
    assert [a.key.user for a in decision.admitted] == ["a", "b"]
    assert decision.waiting[0].reason is WaitReason.COURSE_QUOTA


def test_a_configured_rules_detail_is_the_students_message() -> None:
    base = state({"1g.10gb": 1}, [entry("b")])
    (wait,) = decide(with_rules(base, Blocklist(frozenset({"b"})))).waiting  # type: ignore[arg-type]
    assert format_waiting(wait) == (
        "Waiting for a 1g.10gb GPU slice: position 1 of 1 (about 5 min; you are on the list)"
    )


def test_rule_notes_feed_the_admin_view() -> None:
    base = state({}, [], [running("a")])
    notes = rule_notes(with_rules(base, Blocklist()))  # type: ignore[arg-type]
    assert notes == (RuleNote("blocklist", UserName("a"), "ml-101", "running"),)  # type: ignore[arg-type]


def test_the_policy_files_admission_sections_are_parsed_in_one_place() -> None:
    rules = parse_policy_rules({"quotas": {"courses": {"ml-101": 3}}}, "policy.yaml")
    assert dict(rules.quotas.per_course) == {"ml-101": 3} and rules.rules == ()
    with pytest.raises(ValueError, match=r"policy\.yaml: quotas must map courses and slice_types"):
        parse_policy_rules({"quotas": [1, 2]}, "policy.yaml")
    with pytest.raises(ValueError, match=r"courses\.ml-101 must be a whole number >= 0"):
        parse_policy_rules({"quotas": {"courses": {"ml-101": -1}}}, "policy.yaml")
    assert policy_keys()[0] == "quotas"
    with pytest.raises(ValueError, match="'quotas' is taken"):
        register_rule("quotas", lambda _data: Blocklist())


def test_usage_counts_finished_records_and_running_sessions_since_a_time() -> None:
    session = running("a")  # started two hours before T0
    ended = ended_sessions([session, running("b")], [running("b")], T0)
    assert [(r.user, r.end - r.start) for r in ended] == [("a", minutes(120))]
    record = UsageRecord(UserName("a"), "cv-201", G1, T0 - minutes(300), T0 - minutes(240))  # type: ignore[arg-type]
    assert used([record], [session], UserName("a"), None, T0 - minutes(270), T0) == minutes(150)
    assert used([record], [session], UserName("a"), "ml-101", T0 - minutes(270), T0) == minutes(  # type: ignore[arg-type]
        120
    )
    assert used([record], [], UserName("b"), None, T0 - minutes(600), T0) == timedelta(0)
