"""Fault injection, switchable per run (CLI `--faults`) and at run time (`POST /_emulator/faults`).

A rule matches requests by route (and aggregation source; optionally `path_contains`, a substring of the
request path such as one report's id, `body_contains`, a substring of the request body such as one object's
id in an aggregation source, and `covers_ms`, an instant an aggregation's timeSeries range
[first, last] must contain, to fail every request for one time window; `counts`: whether it also matches
aggregation counts, the `{"count": null}` requests that open each activity window, BEHAVIOR.md §B-22; by
default the body faults `stall`, `reset` and `truncate` hit reads only, whose answers are long enough to
break, and the other kinds hit counts too), skips the first `after`
matches, then fires on the next `times` matches (`null` = forever) or with `probability` (seeded, so
a run is repeatable). Kinds:

* `status`    answer `status` (429, 500, 502, 503, 400, 403, 404...) with an optional `Retry-After`
              (seconds; RFC 9110 allows it on 429 and 503, BEHAVIOR.md §B-3 leaves open whether Pendo sends it)
              and an optional `body` text, where `{key}` stands for the request's integration key (a
              server or proxy that echoes the credential in an error: the client must not print it).
* `slow`      wait `delay_s` before the headers (longer than the client's read timeout = a timeout).
* `stall`     send headers and `after_bytes` of the body, then wait `delay_s` (read timeout mid-body).
* `reset`     send headers and `after_bytes` of the body, then drop the connection (RST).
* `truncate`  send `after_bytes` of the body and end the response cleanly: framing is valid, the JSON
              is not (the case a client can only catch by parsing to the end).
* `wrong_region` answer 400 as Pendo does for a valid key on another region's host (BEHAVIOR.md §B-1).

Routes: aggregation, page, feature, guide, tracktype, report, report_results, segment,
metadata_schema, visitor_history, visitor, account, or `*`.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = {"status", "slow", "stall", "reset", "truncate", "wrong_region"}
BODY_KINDS = {"stall", "reset", "truncate"}  # they break an answer part way through its body


def is_count(body: bytes) -> bool:
    """Whether an aggregation body ends in `{"count": null}` (a count, not a read)."""
    try:
        stages = json.loads(body)["request"]["pipeline"]
        return bool(stages) and stages[-1] == {"count": None}
    except Exception:
        return False


@dataclass
class FaultRule:
    kind: str
    route: str = "*"
    source: str | None = None
    status: int = 503
    retry_after: float | None = None
    times: int | None = 1
    after: int = 0
    probability: float | None = None
    delay_s: float = 0.0
    after_bytes: int = 0
    seed: int = 0
    path_contains: str | None = None
    covers_ms: int | None = None
    body_contains: str | None = None
    body: str | None = None
    counts: bool | None = None
    matched: int = 0
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FaultRule:
        unknown = set(spec) - {
            "kind",
            "route",
            "source",
            "status",
            "retry_after",
            "times",
            "after",
            "probability",
            "delay_s",
            "after_bytes",
            "seed",
            "path_contains",
            "covers_ms",
            "body_contains",
            "body",
            "counts",
        }
        if unknown or spec.get("kind") not in KINDS:
            raise ValueError(
                f"bad fault rule {spec!r}: kind must be one of {sorted(KINDS)}, unknown keys {sorted(unknown)}"
            )
        rule = cls(**spec)
        rule._rng = random.Random(rule.seed)
        if rule.probability is not None and "times" not in spec:
            rule.times = None
        return rule

    def matches(
        self,
        route: str,
        source: str | None,
        path: str = "",
        window: tuple[int, int] | None = None,
        body: bytes = b"",
    ) -> bool:
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        counts = self.counts if self.counts is not None else self.kind not in BODY_KINDS
        if not counts and route == "aggregation" and is_count(body):
            return False
        if self.covers_ms is not None and (window is None or not window[0] <= self.covers_ms <= window[1]):
            return False
        return (
            (self.route in ("*", route))
            and (self.source is None or self.source == source)
            and (self.path_contains is None or self.path_contains in path)
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class FaultPlan:
    """The active rules; `pick` is called once per request and returns the rule to apply, if any."""

    def __init__(self, rules: list[dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self.rules = [FaultRule.from_dict(r) for r in rules or []]

    def replace(self, rules: list[dict[str, Any]]) -> None:
        parsed = [FaultRule.from_dict(r) for r in rules]
        with self._lock:
            self.rules = parsed

    def pick(
        self,
        route: str,
        source: str | None,
        path: str = "",
        window: tuple[int, int] | None = None,
        body: bytes = b"",
    ) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(route, source, path, window, body):
                    continue
                rule.matched += 1
                if rule.matched <= rule.after:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.probability is not None and rule._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def summary(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self.rules]
