"""Routing rules: which queue a conversation goes to (pure; no I/O).

A rule's ``conditions`` must all hold; an empty list or dict matches anything:

* ``channels``: the conversation's channel is one of them;
* ``inbox_ids``: it came in through one of these inboxes;
* ``languages``: the customer's locale starts with one of them (``"ru"`` matches ``"ru-RU"``);
* ``tags``: the conversation carries at least one of them;
* ``segments``: the customer is in at least one (see :func:`customer_segments`);
* ``attributes``: every key matches the customer's attribute (equal, or one of a list).

Rules are tried by position; the first enabled match wins. A conversation that names its queue
(created with ``queue_id``, or transferred) goes there without rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# How a conversation's priority moves its item's priority (queue or rule priority + offset).
PRIORITY_OFFSET = {"low": -10, "normal": 0, "high": 10, "urgent": 20}


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rules look at: the conversation and its customer."""

    channel: str
    inbox_id: str | None = None
    language: str | None = None
    tags: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str
    name: str
    queue_id: str
    conditions: Mapping[str, Any]
    priority: int | None = None
    enabled: bool = True


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "none")
    return bool(value)


def customer_segments(attributes: Mapping[str, Any] | None, satisfaction_tier: str | None = None) -> frozenset[str]:
    """The customer's segments, lower-cased.

    From ``attributes["segment"]`` (a string) and ``attributes["segments"]`` (a list), plus
    ``vip`` when ``attributes["vip"]`` is true, ``at_risk`` when ``attributes["at_risk"]`` is true
    or the satisfaction tier is ``detractor``, and ``debtor`` when ``attributes["debtor"]`` is true
    or ``attributes["balance_due"]`` is above zero.
    """
    attrs = attributes or {}
    out: set[str] = set()
    seg = attrs.get("segment")
    if isinstance(seg, str) and seg.strip():
        out.add(seg.strip().lower())
    segs = attrs.get("segments")
    if isinstance(segs, list | tuple):
        out.update(s.strip().lower() for s in segs if isinstance(s, str) and s.strip())
    if _truthy(attrs.get("vip")):
        out.add("vip")
    if _truthy(attrs.get("at_risk")) or satisfaction_tier == "detractor":
        out.add("at_risk")
    due = attrs.get("balance_due")
    try:
        owes = due is not None and float(due) > 0
    except (TypeError, ValueError):
        owes = False
    if _truthy(attrs.get("debtor")) or owes:
        out.add("debtor")
    return frozenset(out)


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _attribute_matches(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, list | tuple):
        return any(_attribute_matches(actual, w) for w in wanted)
    if isinstance(actual, list | tuple):
        return any(_norm(a) == _norm(wanted) for a in actual)
    if isinstance(wanted, bool):
        return _truthy(actual) == wanted
    if isinstance(wanted, int | float) and not isinstance(actual, bool):
        try:
            return float(actual) == float(wanted)
        except (TypeError, ValueError):
            return False
    return _norm(actual) == _norm(wanted)


def matches(conditions: Mapping[str, Any], subject: Subject) -> bool:
    """Whether every condition holds for ``subject`` (see the module docstring)."""
    channels = conditions.get("channels") or []
    if channels and subject.channel not in channels:
        return False
    inboxes = [str(i) for i in conditions.get("inbox_ids") or []]
    if inboxes and subject.inbox_id not in inboxes:
        return False
    languages = [str(lang).lower() for lang in conditions.get("languages") or []]
    if languages:
        locale = (subject.language or "").lower().replace("_", "-")
        if not locale or not any(locale == lang or locale.startswith(lang + "-") for lang in languages):
            return False
    tags = conditions.get("tags") or []
    if tags and not subject.tags & set(tags):
        return False
    segments = [str(s).lower() for s in conditions.get("segments") or []]
    if segments and not subject.segments & set(segments):
        return False
    attributes: Mapping[str, Any] = conditions.get("attributes") or {}
    for key, wanted in attributes.items():
        if key not in subject.attributes or not _attribute_matches(subject.attributes[key], wanted):
            return False
    return True


def first_match(rules: Iterable[RuleSpec], subject: Subject, serves: Mapping[str, Sequence[str]]) -> RuleSpec | None:
    """The first enabled rule that matches and whose queue serves the subject's channel."""
    for rule in rules:
        if not rule.enabled or not matches(rule.conditions, subject):
            continue
        if subject.channel in serves.get(rule.queue_id, ()):
            return rule
    return None


def item_priority(base: int, conversation_priority: str | None) -> int:
    """The item's priority: the rule's (or queue's) priority moved by the conversation's, within 1..99."""
    return max(1, min(99, base + PRIORITY_OFFSET.get(conversation_priority or "normal", 0)))
