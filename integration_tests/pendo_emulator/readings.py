"""Readings: switches that make the emulator answer as a less convenient, still evidence-compatible Pendo.

BEHAVIOR.md §R-1 … §R-20 lists places where the public evidence allows more than one reading of Pendo's
API. The default world is the reading the emulator was written from; each switch below turns one
other reading on. A switch never changes which records exist (the ground truth): only how the server
answers. The exceptions change the data itself, and the ground truth follows it (truth.py):
`missing_lastupdated` removes a field's value from some rows; `poll_choices_in_attributes` and
`lowercase_poll_types` change how guides list their polls (the choices' place, the type strings' case), so
the `guides` and `polls` records carry what Pendo lists (the choices, `poll_choices`, are the same records);
`rows_without_browsertime` leaves `browserTime` out of some guide/poll events, and their records lack it too.

Give them as `--reading NAME` (repeatable) on the CLI, `EmulatorProcess(readings=[...])`,
`EmulatorSettings(readings=...)` or `Dataset(readings=...)`; `pessimistic` turns on all of `PESSIMISTIC`.

Key variants (derived from any known key, e.g. `emulator-key.us`; unknown keys, and so 403, while their
reading is off):
* `readonly-<key>` (`read_only_key`): a read-only integration key; every GET works, every
  `POST /aggregation` answers 403 `Forbidden` (the emulator's 403 body, §B-3).
* `noagg-<key>` (`bad_request_400`): a key whose plan lacks aggregation access; every GET works, every
  `POST /aggregation` answers 400 `Bad Request` (the same body as a wrong-region 400).
"""

from __future__ import annotations

from collections.abc import Iterable

READINGS: dict[str, str] = {
    "per_period_pipeline": "R-1: every timeSeries period runs the stages after the source on its own; the "
    "response is the periods' outputs in period order (up to limit x periods rows)",
    "visitors_by_app": "R-2: the visitors source is scoped by appId; without appId only visitors of the "
    "default app come back",
    "missing_lastupdated": "R-3: some accounts and visitors have no metadata.auto.lastupdated",
    "receive_time_buckets": "R-4: guideEvents/pollEvents are selected into timeSeries periods by "
    "receivedTime (hours, some over a day, off browserTime either way), not by browserTime",
    "null_results": 'R-5: an empty result is "results": null',
    "bad_request_400": "R-6: rejected requests answer 400 text/plain (not 422); noagg-<key> answers 400 to "
    "every aggregation",
    "history_unavailable": "R-7: GET /visitor/{id}/history answers 422 for every visitor",
    "no_tracktype_rest": "R-8: GET /tracktype answers 404 (the trackTypes aggregation source still works)",
    "report_errors": "R-9: unexportable reports answer 400, 402, 422 or 200 with an object body, by report",
    "strict_value_forms": "R-10: only production value forms: appId a numeric string, a list of them or "
    'expandAppIds("*"); timeSeries first an integer, numeric string or "now()", last a numeric string or '
    '"now()", count an integer; else 422 (400 with bad_request_400)',
    "strict_filters": "R-11: filters are && of simple field-vs-literal comparisons (== < <= > >=); ||, (, ), "
    "!, != and functions answer 422 (400 with bad_request_400)",
    "spaced_json": 'R-12: JSON bodies use ", " and ": " separators and keys in a shuffled, seeded order',
    "rate_limit_403": "R-13: every 6th API request (seeded offset, at most 20 per run, never the same "
    'request twice) answers 403 {"error": "rateLimitExceeded", ...}',
    "read_only_key": "R-14: readonly-<key> is accepted; its GETs work, its aggregations answer 403",
    "exclusive_last": "R-15: timeSeries `last` is an exclusive instant on the rows' own times (rows with a "
    "time before `last`; `first` == `last` selects nothing), not the bucket holding it",
    "limit_before_sort": "R-16: `limit` takes the first rows in storage order (a fixed shuffle), then `sort` "
    "orders only those: a full page is any `limit` rows, not the first ones",
    "sort_first_key_only": "R-17: `sort` orders by its first key only; ties (the rows of one bucket) come in "
    "storage order (a fixed shuffle), so a (bucket, visitorId) keyset skips rows",
    "poll_choices_in_attributes": "R-18: a guide's polls list their answer choices in attributes.choices (pick "
    "lists: [{id, label}], scales: [numbers]), not in idResponses / numericResponses",
    "lowercase_poll_types": "R-19: poll types in the guide listing are lower case (npsrating, picklist, "
    "numberscale, freeform)",
    "rows_without_browsertime": "R-20: about one guide/poll event in thirteen is answered without browserTime "
    "(still selected into its period; a filter on browserTime never holds for it, it sorts first)",
}
"""The readings of BEHAVIOR.md §R-1 … §R-20, name → what changes (also the CLI help)."""

EXTRA_READINGS: dict[str, str] = {
    "history_unavailable_400": "R-7 variant: GET /visitor/{id}/history answers 400 for every visitor "
    "(not part of pessimistic; wins over history_unavailable)",
}
"""Variants outside `pessimistic`."""

PESSIMISTIC = "pessimistic"
ALL_NAMES = (*READINGS, *EXTRA_READINGS, PESSIMISTIC)

READ_ONLY_PREFIX = "readonly-"
NO_AGGREGATION_PREFIX = "noagg-"

RATE_LIMIT_EVERY = 6
RATE_LIMIT_MAX = 20
RATE_LIMIT_BODY = (
    '{"error": "rateLimitExceeded", "message": "Rate limit exceeded, retry later", "status": 403}'
)


def expand(names: Iterable[str] | None) -> frozenset[str]:
    """The set of reading names, `pessimistic` expanded; unknown names raise ValueError."""
    out: set[str] = set()
    for name in names or ():
        if name == PESSIMISTIC:
            out.update(READINGS)
        elif name in READINGS or name in EXTRA_READINGS:
            out.add(name)
        else:
            raise ValueError(f"unknown reading {name!r}; known: {', '.join(ALL_NAMES)}")
    return frozenset(out)


def help_text() -> str:
    lines = [f"  {name}: {text}" for name, text in {**READINGS, **EXTRA_READINGS}.items()]
    return "\n".join(["Readings (--reading NAME, repeatable; 'pessimistic' = all but the variants):", *lines])


__all__ = [
    "ALL_NAMES",
    "EXTRA_READINGS",
    "NO_AGGREGATION_PREFIX",
    "PESSIMISTIC",
    "READINGS",
    "READ_ONLY_PREFIX",
    "expand",
    "help_text",
]
