"""A catalogue object as Pendo lists it -> the records of its child objects (BEHAVIOR.md §B-23).

Why Python: a record per element of a nested list, carrying fields of the object around it (its id, app and
`lastUpdatedAt`), and a poll's choices gathered from whichever place Pendo lists them in (§R-18), is more than a
manifest extractor or transformation can say. Each function takes one parent; a list the parent leaves out, or
holds in another shape, gives no children (never an error), and a child without the text its key needs (a step or
poll without `id`, a rule without text: none is known) is left out. Every record carries the parent's id, `appId`
and `lastUpdatedAt` as `<parent>LastUpdatedAt`, the stream's cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Record = dict[str, Any]


def guide_steps(guide: Mapping[str, Any]) -> list[Record]:
    """One record per step: the step as listed, plus `guideId`, `appId`, `guideLastUpdatedAt`."""
    return [dict(step, **_of_guide(guide)) for step in _keyed(guide.get("steps"), "id")] if _id(guide) else []


def polls(guide: Mapping[str, Any]) -> list[Record]:
    """One record per poll: the poll as listed, plus `guideId`, `appId`, `guideStepId` (the first step listing it
    in `pollIds`), `type` (`attributes.type` as written) and `choices` (`poll_choices` of the poll)."""
    if not _id(guide):
        return []
    step_of: dict[str, str] = {}
    for step in _keyed(guide.get("steps"), "id"):
        for poll_id in _list(step.get("pollIds")):
            if isinstance(poll_id, str):
                step_of.setdefault(poll_id, step["id"])
    out = []
    for poll in _keyed(guide.get("polls"), "id"):
        attributes = poll.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, Mapping) else None
        out.append(
            dict(
                poll,
                **_of_guide(guide),
                guideStepId=step_of.get(poll["id"]),
                type=kind if kind is not None else poll.get("type"),
                choices=choices(poll),
            )
        )
    return out


def poll_choices(guide: Mapping[str, Any]) -> list[Record]:
    """One record per answer choice of each poll: `guideId`, `pollId`, `appId`, the choice (`choiceId`, `label`,
    `value`), its `position` among the poll's choices and `guideLastUpdatedAt`."""
    if not _id(guide):
        return []
    return [
        {
            "guideId": guide["id"],
            "pollId": poll["id"],
            "appId": guide.get("appId"),
            **choice,
            "position": position,
            "guideLastUpdatedAt": guide.get("lastUpdatedAt"),
        }
        for poll in _keyed(guide.get("polls"), "id")
        for position, choice in enumerate(choices(poll))
    ]


def choices(poll: Mapping[str, Any]) -> list[Record]:
    """A poll's answer choices, `{"choiceId", "label", "value"}`, from every place a reading lists them in this
    order, the first of a `choiceId` kept: `idResponses` (choice id -> label), `numericResponses` (a scale's
    values) and `attributes.choices` (objects with `id` or `value` and `label` or `text`; bare numbers or texts).
    `choiceId` is the text `pollResponse` carries: an id, or a number as JSON writes it (`7`)."""
    found: dict[str, Record] = {}

    def add(choice_id: str | None, label: str | None, value: float | None) -> None:
        if choice_id is not None and choice_id not in found:
            found[choice_id] = {"choiceId": choice_id, "label": label, "value": value}

    id_responses = poll.get("idResponses")
    if isinstance(id_responses, Mapping):
        for choice_id, label in id_responses.items():
            add(str(choice_id), _label(label), None)
    for number in _list(poll.get("numericResponses")):
        if _is_number(number):
            add(_number_text(number), None, number)
    attributes = poll.get("attributes")
    listed = attributes.get("choices") if isinstance(attributes, Mapping) else None
    for item in _list(listed):
        if isinstance(item, Mapping):
            raw = item.get("id") if item.get("id") is not None else item.get("value")
            add(_text(raw), _label(item), raw if _is_number(raw) else None)
        elif _is_number(item):
            add(_number_text(item), None, item)
        elif isinstance(item, str):
            add(item, item, None)
    return list(found.values())


def page_rules(page: Mapping[str, Any]) -> list[Record]:
    """One record per distinct rule text: the rule as listed (`rule`, `designerHint`, `parsedRule`), plus `pageId`,
    `appId`, `ruleIndex` (its place in `rules`) and `pageLastUpdatedAt`."""
    if not _id(page):
        return []
    seen: set[str] = set()
    out = []
    for index, rule in enumerate(_list(page.get("rules"))):
        if isinstance(rule, Mapping) and isinstance(rule.get("rule"), str) and rule["rule"] not in seen:
            seen.add(rule["rule"])
            out.append(
                dict(
                    rule,
                    pageId=page["id"],
                    appId=page.get("appId"),
                    ruleIndex=index,
                    pageLastUpdatedAt=page.get("lastUpdatedAt"),
                )
            )
    return out


def feature_rules(feature: Mapping[str, Any]) -> list[Record]:
    """One record per distinct element rule (a CSS selector): `featureId`, `appId`, `elementPathRule`,
    `ruleIndex` (its place in `elementPathRules`) and `featureLastUpdatedAt`."""
    if not _id(feature):
        return []
    seen: set[str] = set()
    out = []
    for index, rule in enumerate(_list(feature.get("elementPathRules"))):
        if isinstance(rule, str) and rule not in seen:
            seen.add(rule)
            out.append(
                {
                    "featureId": feature["id"],
                    "appId": feature.get("appId"),
                    "elementPathRule": rule,
                    "ruleIndex": index,
                    "featureLastUpdatedAt": feature.get("lastUpdatedAt"),
                }
            )
    return out


# manifest.yaml's `children` parameter -> the records of one parent
CHILDREN: dict[str, Callable[[Mapping[str, Any]], list[Record]]] = {
    "steps": guide_steps,
    "polls": polls,
    "choices": poll_choices,
    "rules": page_rules,
    "elementPathRules": feature_rules,
}


def _of_guide(guide: Mapping[str, Any]) -> Record:
    return {
        "guideId": guide["id"],
        "appId": guide.get("appId"),
        "guideLastUpdatedAt": guide.get("lastUpdatedAt"),
    }


def _id(parent: Mapping[str, Any]) -> bool:
    return isinstance(parent.get("id"), str)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _keyed(value: Any, key: str) -> Iterator[Mapping[str, Any]]:
    """The objects of a listed array that have a text `key`, the first of each key."""
    seen: set[str] = set()
    for item in _list(value):
        if isinstance(item, Mapping) and isinstance(item.get(key), str) and item[key] not in seen:
            seen.add(item[key])
            yield item


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_text(value: float) -> str:
    """A number as JSON writes it, an integral float as an integer (`7.0` -> `7`)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return _number_text(value) if _is_number(value) else None


def _label(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for name in ("label", "text", "name"):
            if isinstance(value.get(name), str):
                return str(value[name])
    return None
