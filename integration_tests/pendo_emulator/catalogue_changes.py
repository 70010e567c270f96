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
OPERATIONS = ("tag", "change_rules", "reprocess", "delete", "restore")


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
    sequence: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.untagged or self.deleted or self.updated or self.processed_from or self.unmatched)

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
        for oid in ids:
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
