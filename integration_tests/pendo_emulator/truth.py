"""Ground truth: exactly which records each source-pendo stream must yield for a connector config.

This is the connector's output contract, written once, next to the data it is computed from:
* activity rollups (events, feature_events, page_events, track_events): Pendo's row for the config's
  period (`day` or `hour`) plus `periodStart` (the bucket start, the stream's cursor), for buckets
  starting at or after `start_date`;
* guide_events / poll_events: Pendo's raw rows with `browserTime` >= `start_date`;
* in both, a text field of the primary key (visitorId, accountId, server, remoteIp, userAgent, object
  ids, type) that Pendo leaves out or sends null is "": key fields are never null, so destinations that
  merge on key equality (SQL NULL = NULL is not true) do not keep re-read rows twice;
* visitor_history: Pendo's items plus `visitorId`, for the last 179 whole UTC days (Pendo keeps 180) and
  not before `start_date`;
* accounts / visitors: Pendo's row plus `lastupdated` (metadata.auto.lastupdated, the cursor) and one
  top-level `metadata_<group>_<field>` column per field of every non-per-app metadata group; entity
  streams are complete on the first sync whatever `start_date` says (it scopes activity history);
* catalogues (features, pages, guides, track_types): objects of the configured apps (all when empty);
* their children (guide_steps, polls, poll_choices, page_rules, feature_rules; BEHAVIOR.md §B-23), of the
  objects of the configured apps as listed now: each step, poll and page rule as listed plus its parent's id,
  `appId` and `lastUpdatedAt` (`<parent>LastUpdatedAt`, the cursor); a poll's `type` (its `attributes.type`), its
  step (`guideStepId`, the step listing it in `pollIds`) and its `choices`; a choice per answer the poll was made
  with (`Dataset.poll_choices`, whatever the reading lists them as) and not removed since, with its `position`
  among them; a page rule per distinct rule text, with its `ruleIndex`; a feature rule per element rule;
* reports, segments: as listed; report_results: rows of exportable reports plus `reportId`;
* metadata_accounts / metadata_visitors: one record per (group, field) of the metadata schema.
With `end_date` (a date: its whole day; a timestamp: its whole hour) rollup buckets, raw events and visitor
history items stop before that end (raw events by the time Pendo selects them by, as for start_date). With `filters`, the records of a
stream are those whose Pendo row meets every condition on it (`_meets`, written here from the operators'
meaning, not from the connector's code): a field Pendo leaves out is null, which meets only NOT_EQUAL_TO;
orderings hold between numbers; CONTAINS is a case-sensitive substring; `periodStart` is the bucket and a
BETWEEN's second date includes its whole day.
Anonymous visitors (`_PENDO_T_…`) are left out of every per-visitor stream unless
`include_anonymous_visitors` is true.

Readings (readings.py, BEHAVIOR.md §R-1 … §R-20) change how the server answers, never which records exist, so this
contract is the same under every reading, with exceptions that follow the data: the poll readings (§R-18, §R-19)
change what `guides` and `polls` records carry (the choices' place, the type strings' case); under
`missing_lastupdated` some visitors and accounts have no `metadata.auto.lastupdated`, so their records
carry `lastupdated: null` and no `metadata_auto_lastupdated` column, and they are still part of the
stream (a connector must not lose them); under `rows_without_browsertime` some guide/poll events have no
`browserTime`, and their records neither (still part of the stream). Under `receive_time_buckets` guide/poll events are selected by
`receivedTime` >= `start_date` (`RAW_SELECTION_TIME`): the records are the same, but which of them belong to
"the guide events since start_date" is what Pendo selects into those periods, and under that reading
Pendo selects by its receive time; `browserTime` is the visitor's clock, hours off either way, so a
`browserTime` cut would ask a connector for events no request for those periods can return (and leave
out ones every such request returns). Build the dataset with the server's readings
(`Dataset(..., readings=...)`, `EmulatorProcess.dataset()`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .dataset import ANONYMOUS_PREFIX, DAY_MS, Dataset

ROLLUP_STREAMS = {
    "events": "events",
    "feature_events": "featureEvents",
    "page_events": "pageEvents",
    "track_events": "trackEvents",
}
NUMERIC_KEY_FIELDS = {"appId", "periodStart", "browserTime"}
RAW_STREAMS = {"guide_events": "guideEvents", "poll_events": "pollEvents"}


def raw_selection_time(readings: Iterable[str]) -> str:
    """The field the server selects guide/poll events into periods by: receivedTime under R-4."""
    return "receivedTime" if "receive_time_buckets" in set(readings) else "browserTime"


CATALOGUE_STREAMS = {
    "features": "features",
    "pages": "pages",
    "guides": "guides",
    "track_types": "track_types",
}
HISTORY_DAYS = 179
# child stream -> the catalogue its parents are listed in
CHILD_STREAMS = {
    "guide_steps": "guides",
    "polls": "guides",
    "poll_choices": "guides",
    "page_rules": "pages",
    "feature_rules": "features",
}

PRIMARY_KEYS: dict[str, list[str]] = {
    "accounts": ["accountId"],
    "visitors": ["visitorId"],
    "features": ["id"],
    "pages": ["id"],
    "guides": ["id"],
    "track_types": ["id"],
    "reports": ["id"],
    "segments": ["id"],
    "guide_steps": ["guideId", "id"],
    "polls": ["guideId", "id"],
    "poll_choices": ["guideId", "pollId", "choiceId"],
    "page_rules": ["pageId", "rule"],
    "feature_rules": ["featureId", "elementPathRule"],
    "metadata_accounts": ["group", "field"],
    "metadata_visitors": ["group", "field"],
    "events": ["appId", "visitorId", "accountId", "server", "remoteIp", "userAgent", "periodStart"],
    "feature_events": [
        "appId",
        "visitorId",
        "accountId",
        "server",
        "remoteIp",
        "userAgent",
        "periodStart",
        "featureId",
    ],
    "page_events": [
        "appId",
        "visitorId",
        "accountId",
        "server",
        "remoteIp",
        "userAgent",
        "periodStart",
        "pageId",
    ],
    "track_events": [
        "appId",
        "visitorId",
        "accountId",
        "server",
        "remoteIp",
        "userAgent",
        "periodStart",
        "trackTypeId",
    ],
    "guide_events": ["appId", "guideId", "guideStepId", "visitorId", "accountId", "type", "browserTime"],
    "poll_events": ["appId", "guideId", "pollId", "visitorId", "accountId", "browserTime"],
    "visitor_history": ["visitorId", "ts", "type"],
    # the custom aggregation streams of integration_tests/custom_aggregations/three_streams.json
    "daily_feature_clicks": ["periodStart", "accountId"],
    "visitor_emails": ["visitorId"],
    "guide_event_counts": ["periodStart", "guideId", "type"],
}
CUSTOM_STREAMS = ("daily_feature_clicks", "visitor_emails", "guide_event_counts")


def parse_start_ms(value: str) -> int:
    """`YYYY-MM-DD` (UTC midnight) or RFC 3339 UTC, as epoch ms."""
    if len(value) == 10:
        value += "T00:00:00Z"
    return int(
        datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp() * 1000
    )


def record_key(stream: str, record: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(f) for f in PRIMARY_KEYS[stream])


class GroundTruth:
    def __init__(self, dataset: Dataset) -> None:
        self.ds = dataset

    @staticmethod
    def streams() -> list[str]:
        return [*PRIMARY_KEYS, "report_results"]

    def records(self, stream: str, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        apps = {int(a) for a in config.get("app_ids") or []} or None
        anonymous = bool(config.get("include_anonymous_visitors", False))
        start = parse_start_ms(config["start_date"])
        if stream in ROLLUP_STREAMS:
            period = _period(config)
            return _rollup_records(
                stream, self.ds.rollup_rows(ROLLUP_STREAMS[stream], period), period, config
            )
        if stream in RAW_STREAMS:
            rows = self.ds.raw_events(RAW_STREAMS[stream])
            selected_by = raw_selection_time(self.ds.readings)
            end = end_ms(config)
            return [
                _text_keys_filled(stream, dict(served))
                for r in _people(_apps(rows, apps), anonymous)
                if r[selected_by] >= start
                and r[selected_by] < end
                and _meets(stream, served := self.ds.served_raw_event(r), "browserTime", config)
            ]
        if stream == "visitor_history":
            return self._visitor_history(start, anonymous, end_ms(config))
        if stream == "visitors":
            return [
                promote_metadata(r)
                for r in self.ds.visitor_rows
                if anonymous or not r["visitorId"].startswith(ANONYMOUS_PREFIX)
            ]
        if stream == "accounts":
            return [promote_metadata(r) for r in self.ds.account_rows]
        if stream in CATALOGUE_STREAMS:
            return [
                dict(o)
                for o in self.ds.catalogue(CATALOGUE_STREAMS[stream])
                if apps is None or o["appId"] in apps
            ]
        if stream in CHILD_STREAMS:
            parents = [
                o for o in self.ds.catalogue(CHILD_STREAMS[stream]) if apps is None or o["appId"] in apps
            ]
            return self._children(stream, parents)
        if stream == "reports":
            return [dict(r) for r in self.ds.catalogue("reports")]
        if stream == "segments":
            return [dict(s) for s in self.ds.catalogue("segments")]
        if stream == "report_results":
            out = []
            for report in self.ds.reports:
                for row in self.ds.report_results(report["id"]) or []:
                    out.append(dict(row, reportId=report["id"]))
            return out
        if stream in CUSTOM_STREAMS:
            return self._custom(stream, config, start, anonymous, apps)
        if stream in ("metadata_accounts", "metadata_visitors"):
            schema = self.ds.metadata_schema("account" if stream == "metadata_accounts" else "visitor")
            return [
                dict(descriptor, group=group, field=name)
                for group, fields in schema.items()
                for name, descriptor in fields.items()
            ]
        raise KeyError(f"unknown stream {stream}")

    def _custom(
        self, stream: str, config: Mapping[str, Any], start: int, anonymous: bool, apps: set[int] | None
    ) -> list[dict[str, Any]]:
        """The custom streams of `custom_aggregations/three_streams.json`, computed here without the emulator's
        pipeline engine. An activity custom stream reads one bucket per request (a day of the subscription's time
        zone, or an hour), each bucket starting from start_date on once, `periodStart` its start (Pendo's `day`
        or `hour`, as the built-in rollups', BEHAVIOR.md §B-21); its rows are the pipeline's output over that
        bucket's rows of the config's visitors and apps (one app here, or all: with several app partitions each
        would group its own rows)."""
        if stream == "visitor_emails":  # {"visitors": {"identified": true}} -> select
            return [
                {
                    "visitorId": r["visitorId"],
                    "email": ((r.get("metadata") or {}).get("agent") or {}).get("email"),
                    "first_visit": ((r.get("metadata") or {}).get("auto") or {}).get("firstvisit"),
                }
                for r in self.ds.visitor_rows
                if not r["visitorId"].startswith(ANONYMOUS_PREFIX)
            ]
        period = _period(config)
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        if stream == "daily_feature_clicks":  # featureEvents -> group [accountId]: sum numEvents, count rows
            field = "day" if period == "dayRange" else "hour"
            for r in _people(_apps(self.ds.rollup_rows("featureEvents", period), apps), anonymous):
                label = r[field]
                if label < start:
                    continue
                out = groups.setdefault(
                    (label, r.get("accountId")),
                    {"periodStart": label, "accountId": r.get("accountId"), "clicks": 0, "feature_rows": 0},
                )
                out["clicks"] += r.get("numEvents") or 0
                out["feature_rows"] += 1
            return list(groups.values())
        # guide_event_counts: guideEvents -> group [guideId, type]: count rows
        selected_by = raw_selection_time(self.ds.readings)
        for r in _people(_apps(self.ds.raw_events("guideEvents"), apps), anonymous):
            label = self.ds.bucket_start(period, r[selected_by])
            if label < start:
                continue
            out = groups.setdefault(
                (label, r.get("guideId"), r.get("type")),
                {"periodStart": label, "guideId": r.get("guideId"), "type": r.get("type"), "events": 0},
            )
            out["events"] += 1
        return list(groups.values())

    def _children(self, stream: str, parents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The child records of the listed parents (BEHAVIOR.md §B-23), from what the dataset generated."""
        out: list[dict[str, Any]] = []
        for parent in parents:
            if stream == "page_rules":
                texts: set[str] = set()
                for index, rule in enumerate(parent.get("rules") or []):
                    if rule["rule"] not in texts:
                        texts.add(rule["rule"])
                        out.append(
                            dict(
                                rule,
                                pageId=parent["id"],
                                appId=parent["appId"],
                                ruleIndex=index,
                                pageLastUpdatedAt=parent["lastUpdatedAt"],
                            )
                        )
                continue
            if stream == "feature_rules":
                out.extend(
                    {
                        "featureId": parent["id"],
                        "appId": parent["appId"],
                        "elementPathRule": rule,
                        "ruleIndex": index,
                        "featureLastUpdatedAt": parent["lastUpdatedAt"],
                    }
                    for index, rule in enumerate(parent.get("elementPathRules") or [])
                )
                continue
            guide = {"guideId": parent["id"], "appId": parent["appId"]}
            stamp = {"guideLastUpdatedAt": parent["lastUpdatedAt"]}
            if stream == "guide_steps":
                out.extend(dict(step, **guide, **stamp) for step in parent["steps"])
                continue
            for poll in parent.get("polls") or []:
                choices = [
                    c
                    for c in self.ds.poll_choices[(parent["id"], poll["id"])]
                    if not self.ds.changes.is_removed(parent["id"], "choices", poll["id"], c["choiceId"])
                ]
                if stream == "poll_choices":
                    out.extend(
                        dict(c, pollId=poll["id"], position=n, **guide, **stamp)
                        for n, c in enumerate(choices)
                    )
                    continue
                steps = [s["id"] for s in parent["steps"] if poll["id"] in s.get("pollIds", [])]
                out.append(
                    dict(
                        poll,
                        **guide,
                        guideStepId=steps[0] if steps else None,
                        type=poll["attributes"]["type"],
                        choices=choices,
                        **stamp,
                    )
                )
        return out

    def late_records(self, stream: str, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The late-arriving rows of a rollup stream (the `late_rows` fault), as the connector emits them."""
        period = _period(config)
        source = ROLLUP_STREAMS[stream]
        hours = self.ds.late_hour_rows(source)
        rows = hours if period == "hourRange" else self.ds.rollup_by_day(hours, source)
        return _rollup_records(stream, rows, period, config)

    def history_start(self, start_ms: int) -> int:
        today = self.ds.now_ms - self.ds.now_ms % DAY_MS
        return max(start_ms, today - HISTORY_DAYS * DAY_MS)

    def _visitor_history(
        self, start: int, anonymous: bool, end: float = float("inf")
    ) -> list[dict[str, Any]]:
        first = self.history_start(start)
        out = []
        for row in self.ds.visitor_rows:
            vid = row["visitorId"]
            if (not anonymous and vid.startswith(ANONYMOUS_PREFIX)) or row["metadata"]["pendo"][
                "donotprocess"
            ]:
                continue
            out.extend(
                dict(item, visitorId=vid)
                for item in self.ds.visitor_history.get(vid, [])
                if first <= item["ts"] < end
            )
        return out


def promote_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """Pendo's visitor/account row plus `lastupdated` and a `metadata_<group>_<field>` column per field."""
    out = dict(row)
    metadata = row.get("metadata") or {}
    out["lastupdated"] = (metadata.get("auto") or {}).get("lastupdated")
    for group, fields in metadata.items():
        if group.startswith("auto_") or not isinstance(fields, dict):
            continue
        for name, value in fields.items():
            # a group with an underscore takes two before the field (source_pendo metadata_column)
            out[f"metadata_{group}__{name}" if "_" in group else f"metadata_{group}_{name}"] = value
    return out


def _period(config: Mapping[str, Any]) -> str:
    return "dayRange" if config.get("period", "DAY") == "DAY" else "hourRange"


def _rollup_records(
    stream: str, rows: Iterable[dict[str, Any]], period: str, config: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Rollup rows of the config's apps and visitors from start_date on, plus `periodStart` (the bucket)."""
    field = "day" if period == "dayRange" else "hour"
    apps = {int(a) for a in config.get("app_ids") or []} or None
    start, end = parse_start_ms(config["start_date"]), end_ms(config)
    people = _people(_apps(rows, apps), bool(config.get("include_anonymous_visitors", False)))
    return [
        _text_keys_filled(stream, dict(r, periodStart=r[field]))
        for r in people
        if start <= r[field] < end and _meets(stream, dict(r, periodStart=r[field]), "periodStart", config)
    ]


def end_ms(config: Mapping[str, Any]) -> float:
    """The exclusive end of activity: end_date's whole day (a date) or whole hour (a timestamp); none: no end."""
    value = config.get("end_date")
    if not value:
        return float("inf")
    moment = parse_start_ms(value)
    return moment + DAY_MS if len(value) == 10 else moment - moment % 3_600_000 + 3_600_000


def _time_value(value: Any, whole_day: bool = False) -> Any:
    if isinstance(value, str):
        return parse_start_ms(value) + (DAY_MS - 1 if whole_day and len(value) == 10 else 0)
    return value


_ORDERINGS = {
    "LESS_THAN": lambda a, b: a < b,
    "GREATER_THAN": lambda a, b: a > b,
    "LESS_THAN_OR_EQUAL_TO": lambda a, b: a <= b,
    "GREATER_THAN_OR_EQUAL_TO": lambda a, b: a >= b,
}


def _meets(stream: str, row: Mapping[str, Any], time_field: str, config: Mapping[str, Any]) -> bool:
    """Whether a Pendo row meets every `filters` condition on `stream`."""
    for condition in config.get("filters") or []:
        if condition["stream"] != stream:
            continue
        field, op, wanted = condition["field"], condition["operator"], condition["value"]
        value = row.get(field)
        is_time = field == time_field
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if op == "BETWEEN":
            low, high = _time_value(wanted[0]), _time_value(wanted[1], whole_day=True)
            ok = number and low <= value <= high
        elif op == "CONTAINS":
            ok = isinstance(value, str) and wanted in value
        elif op in ("EQUAL_TO", "NOT_EQUAL_TO"):
            wanted = _time_value(wanted) if is_time else wanted
            both_numbers = number and isinstance(wanted, (int, float))
            equal = value == wanted if both_numbers else (type(value) is type(wanted) and value == wanted)
            ok = equal if op == "EQUAL_TO" else not equal
        else:
            wanted = _time_value(wanted) if is_time else wanted
            ok = number and _ORDERINGS[op](value, wanted)
        if not ok:
            return False
    return True


def _text_keys_filled(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    for name in PRIMARY_KEYS[stream]:
        if name not in NUMERIC_KEY_FIELDS and record.get(name) is None:
            record[name] = ""
    return record


def _apps(rows: Iterable[dict[str, Any]], apps: set[int] | None) -> Iterable[dict[str, Any]]:
    return rows if apps is None else (r for r in rows if r["appId"] in apps)


def _people(rows: Iterable[dict[str, Any]], anonymous: bool) -> Iterable[dict[str, Any]]:
    return rows if anonymous else (r for r in rows if not r["visitorId"].startswith(ANONYMOUS_PREFIX))
