"""Changes to the Pendo catalogue between two syncs of a test: new tags, rule edits, reprocessing, deletions.

What Pendo does (BEHAVIOR.md §F-1): a Page or Feature tagged today matches the raw events of its whole history,
processed newest first (hours on a big subscription); editing a tag's rule clears its tagged events and
reprocesses them the same way; a deleted object is gone from the catalogue and its tagged events with it.

The emulator's dataset generates every object's events up front; an object listed in `untagged` exists in
that history but not yet as a tag: it is absent from the catalogue and so are its events. The operations
(`apply`), sent through `POST /_emulator/catalogue` or `EmulatorProcess.change_catalogue`:

    {"op": "tag", "ids": [...], "processed_from": <ms> | null}
        the objects become tags: listed, createdAt = lastUpdatedAt = the change's stamp; their events are visible
        from `processed_from` on (reprocessing still running, newest first) or all of them (null: done)
    {"op": "change_rules", "ids": [...], "processed_from": <ms> | null, "unmatched_visitors": [...]}
        a rule edit: lastUpdatedAt = the stamp, the rule text changes, events reprocessed as for `tag`; the rows
        of `unmatched_visitors` (optional) no longer match the new rule: they are gone from the object's events
    {"op": "reprocess", "ids": [...], "processed_from": <ms> | null}
        reprocessing moved on (an earlier `processed_from`) or finished (null)
    {"op": "delete", "ids": [...]}   the objects and their events disappear
    {"op": "restore", "ids": [...]}  a deleted object is back, as it was
    {"op": "remove_child", "ids": [<parent id>], "field": F, "key": K, "touch": true}
        a child object is gone from its parent (BEHAVIOR.md §B-23): F `steps` (K a step id), `polls` (a poll id;
        also gone from its step's `pollIds`), `choices` (K [poll id, choice id]: gone from `idResponses`,
        `numericResponses` or `attributes.choices`, wherever the reading lists it), `rules` (a page's rule text)
        or `elementPathRules` (a feature's rule text); the parent's lastUpdatedAt = the stamp, unless `touch` is
        false (an edit Pendo would not stamp: deletions must not depend on it)

A change's stamp is the emulator's clock minus a minute plus a sequence number (every generated object was
last updated at least an hour before the clock), so each change is later than anything listed before it.
The ground truth (truth.py) reads the same Dataset, so it follows: `EmulatorProcess.dataset()` replays the
changes sent to the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MINUTE_MS = 60_000
OPERATIONS = ("tag", "change_rules", "reprocess", "delete", "restore", "remove_child")
CHILD_FIELDS = ("steps", "polls", "choices", "rules", "elementPathRules")


@dataclass
class CatalogueChanges:
    untagged: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    created: dict[str, int] = field(default_factory=dict)  # id -> createdAt of a new tag
    updated: dict[str, int] = field(default_factory=dict)  # id -> lastUpdatedAt after a tag or rule edit
    rule_versions: dict[str, int] = field(default_factory=dict)  # id -> rule edits so far
    processed_from: dict[str, int] = field(default_factory=dict)  # id -> oldest bucket reprocessed so far
    unmatched: dict[str, set[str]] = field(
        default_factory=dict
    )  # id -> visitors its new rule no longer matches
    # (parent id, child field, child key): children gone from their parent (a choice's key: (poll id, choice id))
    removed: set[tuple[str, str, tuple[str, ...]]] = field(default_factory=set)
    sequence: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.untagged
            or self.deleted
            or self.updated
            or self.processed_from
            or self.unmatched
            or self.removed
        )

    def is_removed(self, parent_id: str, child_field: str, *key: str) -> bool:
        """Whether this child was removed from its parent (the ground truth leaves it out, truth.py)."""
        return (parent_id, child_field, tuple(key)) in self.removed

    def apply(self, change: dict[str, Any], now_ms: int) -> None:
        op, ids = change.get("op"), change.get("ids")
        if op not in OPERATIONS or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(
                f"a catalogue change is {{'op': one of {OPERATIONS}, 'ids': [str]}}, not {change!r}"
            )
        processed_from = change.get("processed_from")
        if processed_from is not None and not isinstance(processed_from, int):
            raise ValueError(f"processed_from is epoch ms or null, not {processed_from!r}")
        unmatched = change.get("unmatched_visitors") or []
        if not isinstance(unmatched, list) or (unmatched and op != "change_rules"):
            raise ValueError(
                f"unmatched_visitors is a list of visitor ids, for change_rules only: {change!r}"
            )
        child_key = self._child_key(change) if op == "remove_child" else ()
        for oid in ids:
            if op == "remove_child":
                self.removed.add((oid, change["field"], child_key))
                if change.get("touch", True):
                    self.sequence += 1
                    self.updated[oid] = now_ms - MINUTE_MS + self.sequence
                continue
            if op in ("tag", "change_rules"):
                self.sequence += 1
                stamp = now_ms - MINUTE_MS + self.sequence
                if op == "tag":
                    self.untagged.discard(oid)
                    self.created[oid] = stamp
                else:
                    self.rule_versions[oid] = self.rule_versions.get(oid, 0) + 1
                    self.unmatched[oid] = set(map(str, unmatched))
                self.updated[oid] = stamp
            if op in ("tag", "change_rules", "reprocess"):
                if processed_from is None:
                    self.processed_from.pop(oid, None)
                else:
                    self.processed_from[oid] = processed_from
            elif op == "delete":
                self.deleted.add(oid)
            elif op == "restore":
                self.deleted.discard(oid)

    @staticmethod
    def _child_key(change: dict[str, Any]) -> tuple[str, ...]:
        child_field, key = change.get("field"), change.get("key")
        if child_field not in CHILD_FIELDS:
            raise ValueError(f"remove_child takes a field among {CHILD_FIELDS}, not {child_field!r}")
        keys = key if child_field == "choices" else [key]
        if not isinstance(keys, list) or len(keys) != (2 if child_field == "choices" else 1):
            raise ValueError(f"remove_child of {child_field} takes a key of {child_field}: {change!r}")
        if not all(isinstance(k, str) for k in keys):
            raise ValueError(f"a child's key is text: {change!r}")
        return tuple(keys)

    # ------------------------------------------------------------------ what the API shows
    def listed(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The catalogue as Pendo lists it now (copies where a change shows)."""
        if not self.changed:
            return list(objects)
        out = []
        for obj in objects:
            oid = obj["id"]
            if oid in self.untagged or oid in self.deleted:
                continue
            if oid in self.updated:
                obj = dict(obj, lastUpdatedAt=self.updated[oid])
                if oid in self.created:
                    obj["createdAt"] = self.created[oid]
                version = self.rule_versions.get(oid)
                if version:
                    if "rules" in obj:  # a page: its URL rule
                        obj["rules"] = [dict(r, rule=f"{r['rule']}?v={version}") for r in obj["rules"]]
                    if "elementPathRules" in obj:  # a feature: its element rule
                        obj["elementPathRules"] = [f"{r}.v{version}" for r in obj["elementPathRules"]]
            gone = [(f, k) for parent, f, k in self.removed if parent == oid]
            if gone:
                obj = _without_children(dict(obj), gone)
            out.append(obj)
        return out

    def visible_rows(
        self, rows: list[dict[str, Any]], object_field: str | None, time_field: str
    ) -> list[dict[str, Any]]:
        """Tagged event rows as Pendo serves them now: none of an untagged or deleted object, and of an object
        being reprocessed only the buckets reprocessed so far (newest first)."""
        if object_field is None or not self.changed:
            return rows
        hidden = self.untagged | self.deleted
        since, unmatched = self.processed_from, self.unmatched
        return [
            r
            for r in rows
            if r.get(object_field) not in hidden
            and r[time_field] >= since.get(r.get(object_field), r[time_field])
            and r.get("visitorId") not in unmatched.get(r.get(object_field), ())
        ]


def _number_text(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _without_children(obj: dict[str, Any], gone: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    """A copy of a listed parent without the removed children (`remove_child`)."""
    for child_field, key in gone:
        if child_field == "steps":
            obj["steps"] = [s for s in obj.get("steps") or [] if s.get("id") != key[0]]
        elif child_field == "polls":
            obj["polls"] = [p for p in obj.get("polls") or [] if p.get("id") != key[0]]
            obj["steps"] = [
                dict(s, pollIds=[i for i in s["pollIds"] if i != key[0]]) if "pollIds" in s else s
                for s in obj.get("steps") or []
            ]
        elif child_field == "choices":
            obj["polls"] = [
                _without_choice(p, key[1]) if p.get("id") == key[0] else p for p in obj.get("polls") or []
            ]
        elif child_field == "rules":
            obj["rules"] = [r for r in obj.get("rules") or [] if r.get("rule") != key[0]]
        else:
            obj["elementPathRules"] = [r for r in obj.get("elementPathRules") or [] if r != key[0]]
    return obj


def _without_choice(poll: dict[str, Any], choice_id: str) -> dict[str, Any]:
    poll = dict(poll)
    if isinstance(poll.get("idResponses"), dict):
        poll["idResponses"] = {k: v for k, v in poll["idResponses"].items() if k != choice_id}
    if isinstance(poll.get("numericResponses"), list):
        poll["numericResponses"] = [n for n in poll["numericResponses"] if _number_text(n) != choice_id]
    attributes = poll.get("attributes")
    if isinstance(attributes, dict) and isinstance(attributes.get("choices"), list):
        poll["attributes"] = dict(
            attributes,
            choices=[
                c
                for c in attributes["choices"]
                if _number_text(c.get("id") if isinstance(c, dict) else c) != choice_id
            ],
        )
    return poll
