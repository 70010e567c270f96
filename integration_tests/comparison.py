"""Comparing what the connector emitted with the ground truth, with a diff a person can read."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from integration_tests.pendo_emulator.truth import PRIMARY_KEYS, record_key


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def canonical(record: dict[str, Any]) -> str:
    """A record's identity for comparison. A null field and an absent one are the same record: the CDK's
    message serialiser omits nulls (serpyco `omit_none`), and destinations load both as NULL."""
    return json.dumps(without_nulls(record), sort_keys=True, separators=(",", ":"))


def assert_records_equal(stream: str, actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same records, same multiplicity (a duplicate is a failure), whatever the order."""
    got, want = Counter(map(canonical, actual)), Counter(map(canonical, expected))
    if got == want:
        return
    missing = list((want - got).elements())
    extra = list((got - want).elements())
    lines = [
        f"{stream}: {len(actual)} records emitted, {len(expected)} expected; {len(missing)} missing, {len(extra)} unexpected"
    ]
    if stream in PRIMARY_KEYS:
        extra_keys = {record_key(stream, json.loads(e)) for e in extra}
        for m in missing[:3]:
            key = record_key(stream, json.loads(m))
            twin = next((e for e in extra if record_key(stream, json.loads(e)) == key), None)
            lines.append(
                f"  missing {key}" + (f"\n    want {m}\n    got  {twin}" if key in extra_keys else "")
            )
    lines += [f"  unexpected {e[:300]}" for e in extra[:3]]
    raise AssertionError("\n".join(lines))


def assert_unique_keys(stream: str, records: list[dict[str, Any]]) -> None:
    counts = Counter(record_key(stream, r) for r in records)
    dupes = [k for k, n in counts.items() if n > 1]
    assert not dupes, f"{stream}: {len(dupes)} primary keys emitted more than once, e.g. {dupes[:3]}"
