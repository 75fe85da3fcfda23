"""The admission rules a policy file may configure, and the one parser of its sections.

Each configurable rule registers the top-level key it reads in the profile policy file
(``register_rule("budgets", parse_budgets)``); :func:`parse_policy_rules` parses ``quotas``
and every registered section of that file, in one place, with errors that name the file, the
key and the accepted form. The built-in rules (detached entries, course and slice-type quotas)
run first, in that order, then the configured ones in registration order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub_ext.core.admission.model import Quotas
from hub_ext.core.admission.rules.base import AdmissionRule
from hub_ext.core.admission.rules.quotas import CourseQuotaRule, DetachedRule, SliceTypeQuotaRule

RuleParser = Callable[[Any], AdmissionRule]
"""Builds a rule from its section of the policy file; raises ValueError naming the problem."""

_PARSERS: dict[str, RuleParser] = {}


def register_rule(key: str, parser: RuleParser) -> None:
    """Let the policy file configure a rule under ``key`` (one parser per key)."""
    if key == "quotas" or _PARSERS.get(key, parser) is not parser:
        raise ValueError(f"admission rules: the policy key {key!r} is taken")
    _PARSERS[key] = parser


def policy_keys() -> tuple[str, ...]:
    """The policy file's top-level keys the admission rules read."""
    return ("quotas", *_PARSERS)


@dataclass(frozen=True)
class PolicyRules:
    """What the admission part of the policy file configures."""

    quotas: Quotas = field(default_factory=Quotas)
    rules: tuple[AdmissionRule, ...] = ()
    """Configured rules beyond the built-in ones, in registration order."""


def parse_quotas(data: Any, where: str = "admission quotas") -> Quotas:
    """``{"courses": {slug: max}, "slice_types": {type: max}}`` (None: no quotas)."""
    if data is None:
        return Quotas()
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise ValueError(
            f"{where}: quotas must map courses and slice_types to {{name: maximum servers}}"
        )
    return Quotas.from_mapping({str(k): dict(v) for k, v in data.items()})


def parse_policy_rules(data: Mapping[str, Any], where: str) -> PolicyRules:
    """The ``quotas`` and every registered rule section of a policy file's mapping (other
    keys are not looked at); ``where`` names the file in errors."""
    quotas = parse_quotas(data.get("quotas"), where)
    rules: list[AdmissionRule] = []
    for key, parser in _PARSERS.items():
        if data.get(key) is not None:
            try:
                rules.append(parser(data[key]))
            except ValueError as error:
                raise ValueError(f"{where}: {key}: {error}") from None
    return PolicyRules(quotas, tuple(rules))


def builtin_rules(quotas: Quotas) -> tuple[AdmissionRule, ...]:
    """The rules every decision applies first: detached entries, then the quotas."""
    return (
        DetachedRule(),
        CourseQuotaRule(quotas.per_course),
        SliceTypeQuotaRule(quotas.per_slice_type),
    )
