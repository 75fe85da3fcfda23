"""Admission rules: one module per rule behind one small interface (:mod:`.base`).

:mod:`.quotas` holds the built-in rules, :mod:`.registry` the rules a policy file configures
and the one parser of the policy's admission sections. A new rule is a module here that
subclasses :class:`~.base.AdmissionRule` and registers its policy key (imported below).
"""

from __future__ import annotations

from hub_ext.core.admission.rules import budget  # registers the "budgets" policy key
from hub_ext.core.admission.rules.base import AdmissionRule, Hold, RuleContext, RuleNote, RulePass
from hub_ext.core.admission.rules.registry import (
    PolicyRules,
    builtin_rules,
    parse_policy_rules,
    parse_quotas,
    policy_keys,
    register_rule,
)

__all__ = [
    "AdmissionRule",
    "Hold",
    "PolicyRules",
    "RuleContext",
    "RuleNote",
    "RulePass",
    "budget",
    "builtin_rules",
    "parse_policy_rules",
    "parse_quotas",
    "policy_keys",
    "register_rule",
]
