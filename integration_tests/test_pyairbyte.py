"""PyAirbyte runs the installed source-pendo against the emulator process and keeps its state between reads.

`pyairbyte_sync.py` (its own process: importing `airbyte` changes the importing process) reads `pages` and
`events` (DAY) twice into one DuckDB cache, offline: `AIRBYTE_OFFLINE_MODE=1` and `DO_NOT_TRACK=1`, and the
registry pointed at a closed port, so a registry lookup would fail the read. With write strategy `auto`, both
streams have a primary key, so PyAirbyte MERGEs each read into its table on that key. The NPS-per-account query of
docs/pendo.md runs in such a cache (`--sql`) and must give the NPS the ground truth gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import CONNECTOR_NOW_ENV, EMULATOR_TZ, assert_no_secret, connector_command
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS
from integration_tests.pendo_emulator.truth import GroundTruth, record_key

SCRIPT = Path(__file__).with_name("pyairbyte_sync.py")
SCHEMAS = Path(__file__).resolve().parents[1] / "source_pendo" / "schemas"
STREAMS = ["pages", "events"]
UNREACHABLE_REGISTRY = "http://127.0.0.1:9/oss_registry.json"  # port 9 (discard): nothing listens there

# one worker runs both tests: they share the module fixture's two PyAirbyte reads (scripts/test.sh: --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pyairbyte")]


@pytest.fixture(scope="module")
def pyairbyte(emulator, base_config, tmp_path_factory) -> dict[str, Any]:
    """Both reads' results: records processed, start time, and every cached row after each read."""
    return _pyairbyte_reads(base_config, tmp_path_factory.mktemp("pyairbyte"), STREAMS)


def _pyairbyte_reads(
    base_config: dict[str, Any],
    work: Path,
    streams: list[str],
    between_reads: str | None = None,
    reads: int = 2,
    sql: str | None = None,
    env_extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    config = work / "config.json"
    config.write_text(json.dumps(base_config))
    output = work / "result.json"
    env = dict(
        os.environ,
        AIRBYTE_OFFLINE_MODE="1",
        DO_NOT_TRACK="1",
        AIRBYTE_LOCAL_REGISTRY=UNREACHABLE_REGISTRY,
        **(env_extra or {}),
    )
    if sql is not None:
        (work / "query.sql").write_text(sql)
    # PyAirbyte starts the connector with this environment: it reads the session's pinned clock.
    assert env.get(CONNECTOR_NOW_ENV), f"{CONNECTOR_NOW_ENV} is not set"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--executable",
            connector_command()[0],
            "--config",
            str(config),
            "--cache-dir",
            str(work),
            "--streams",
            ",".join(streams),
            "--output",
            str(output),
            *(["--between-reads", between_reads] if between_reads else []),
            "--reads",
            str(reads),
            *(["--sql", str(work / "query.sql")] if sql is not None else []),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    logs = "".join(p.read_text(errors="replace") for p in (work / "logs").rglob("*") if p.is_file())
    assert_no_secret(proc.stdout + proc.stderr + logs)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(output.read_text())


def _records(stream: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cached rows back as the connector's records: PyAirbyte's lower-case columns renamed to the schema's
    names, its `_airbyte_*` columns dropped, JSON columns (every non-string property) parsed."""
    properties = json.loads((SCHEMAS / f"{stream}.json").read_text())["properties"]
    names = {name.lower(): name for name in properties}
    records = []
    for row in rows:
        record = {}
        for column, value in row.items():
            if column.startswith("_airbyte_") or value is None:
                continue
            name = names.get(column, column)
            if isinstance(value, str) and "string" not in properties.get(name, {}).get("type", []):
                value = json.loads(value)
            record[name] = value
        records.append(record)
    return records


def _read_again(pyairbyte: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    """The rows the second read wrote: PyAirbyte stamps each row with the emitting record's time."""
    second = pyairbyte["reads"][1]
    return [r for r in second["tables"][stream] if r["_airbyte_extracted_at"] >= second["started_ms"]]


def test_pyairbyte_first_read_caches_exactly_the_ground_truth(pyairbyte, truth, base_config):
    first = pyairbyte["reads"][0]
    expected = {stream: truth.records(stream, base_config) for stream in STREAMS}
    assert first["processed_records"] == sum(len(records) for records in expected.values())
    for stream in STREAMS:
        assert_records_equal(stream, _records(stream, first["tables"][stream]), expected[stream])


def test_pyairbyte_saves_the_connector_state_for_the_next_read(pyairbyte, base_config):
    states = {
        s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"]
        for s in pyairbyte["state_after_first"]
    }
    assert set(states) == set(STREAMS)
    assert states["events"]["period"] == base_config["period"]
    assert states["events"]["apps"]["*"]["periodStart"] > 0
    assert states["pages"]["lastUpdatedAt"]


def test_pyairbyte_second_read_is_incremental_and_rereads_only_the_lookback(pyairbyte, truth, base_config):
    first, second = pyairbyte["reads"]
    again = {stream: _records(stream, _read_again(pyairbyte, stream)) for stream in STREAMS}
    # everything the second read emitted reached the cache, and it is far less than a full read
    assert second["processed_records"] == sum(len(records) for records in again.values())
    assert 0 < second["processed_records"] < first["processed_records"] / 2
    newest = max(r["periodStart"] for r in truth.records("events", base_config))
    # lookback (1 day) + the bucket still open at the first read (1 period) + hour alignment of the frontier
    assert again["events"], "the second read re-read nothing: the lookback was not applied"
    assert all(r["periodStart"] >= newest - 2 * DAY_MS - 3_600_000 for r in again["events"])
    newest_page = max(r["lastUpdatedAt"] for r in truth.records("pages", base_config))
    assert all(r["lastUpdatedAt"] >= newest_page for r in again["pages"])


def test_pyairbyte_pages_second_read_merges_on_the_primary_key(pyairbyte, truth, base_config):
    cached = _records("pages", pyairbyte["reads"][1]["tables"]["pages"])
    assert_records_equal("pages", cached, truth.records("pages", base_config))


def test_pyairbyte_events_cache_equals_the_ground_truth_after_the_second_read(pyairbyte, truth, base_config):
    """The lookback re-read merges onto the first read's rows, including rows of an app that logs no
    addresses: their `remoteIp` key field is "" (never null; SQL NULL = NULL is not true)."""
    cached = _records("events", pyairbyte["reads"][1]["tables"]["events"])
    assert_records_equal("events", cached, truth.records("events", base_config))
    assert len({record_key("events", r) for r in cached}) == len(cached)


CUSTOM_STREAM = "daily_feature_clicks"  # integration_tests/custom_aggregations/three_streams.json


def test_pyairbyte_reads_a_custom_aggregation_stream_into_duckdb_twice(
    emulator, truth, base_config, tmp_path
):
    """A custom stream (featureEvents grouped by account per day) cached by PyAirbyte equals the truth after the
    first read and after the second, incremental one (merged on periodStart, accountId)."""
    entries = json.loads((Path(__file__).parent / "custom_aggregations" / "three_streams.json").read_text())
    config = dict(base_config, custom_aggregations=[e for e in entries if e["name"] == CUSTOM_STREAM])
    result = _pyairbyte_reads(config, tmp_path, [CUSTOM_STREAM])
    expected = truth.records(CUSTOM_STREAM, config)
    names = {name.lower(): name for record in expected for name in record}

    def records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {names.get(k, k): v for k, v in row.items() if not k.startswith("_airbyte_") and v is not None}
            for row in rows
        ]

    first, second = result["reads"]
    assert first["processed_records"] == len(expected)
    assert_records_equal(CUSTOM_STREAM, records(first["tables"][CUSTOM_STREAM]), expected)
    assert 0 < second["processed_records"] < first["processed_records"]
    assert_records_equal(CUSTOM_STREAM, records(second["tables"][CUSTOM_STREAM]), expected)


def test_pyairbyte_cache_after_a_deletion_holds_the_deletion_record_as_the_row(
    emulator_now, base_config, tmp_path_factory
):
    """PyAirbyte merges on the primary key and does not apply `_ab_cdc_deleted_at`: after a page is deleted in
    Pendo, the cache's row for it is the deletion record (id, lastUpdatedAt, _ab_cdc_deleted_at; the other
    columns empty), as docs/pendo.md says. The other pages are unchanged."""
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        gone = process.dataset().pages[0]["id"]
        change = json.dumps([{"op": "delete", "ids": [gone]}])
        config = dict(base_config, base_url=process.base_url)
        result = _pyairbyte_reads(
            config,
            tmp_path_factory.mktemp("pyairbyte_deletion"),
            ["pages"],
            between_reads=f"{process.base_url}/_emulator/catalogue={change}",
        )
        process.catalogue_changes.append({"op": "delete", "ids": [gone]})  # what the script sent
        truth = GroundTruth(process.dataset())
    first, second = (read["tables"]["pages"] for read in result["reads"])
    assert gone in {r["id"] for r in first}
    deleted = [r for r in second if r["id"] == gone]
    assert len(deleted) == 1 and deleted[0]["_ab_cdc_deleted_at"] is not None
    assert deleted[0]["name"] is None and deleted[0]["rules"] is None
    kept = _records("pages", [r for r in second if r["id"] != gone])
    assert_records_equal("pages", kept, truth.records("pages", config))


# ----------------------------------------------------------------------------------------------- docs' NPS query
DOCS = Path(__file__).resolve().parents[1] / "docs" / "pendo.md"
NPS_STREAMS = ["poll_events", "polls", "poll_choices"]


def docs_query(heading: str) -> str:
    """The first ```sql block after `heading` in docs/pendo.md: the query a reader copies."""
    text = DOCS.read_text()
    section = text[text.index(heading) :]
    start = section.index("```sql\n") + len("```sql\n")
    return section[start : section.index("```", start)]


def nps_by_account(truth: GroundTruth, config: dict[str, Any]) -> list[list[Any]]:
    """The NPS of each account, from the ground truth of the three streams: each visitor's latest answer to a poll
    whose type is NPSRating (any case), scored by the answer's choice; promoters 9-10, detractors 0-6; the share
    difference in percent, rounded half away from zero to one decimal (as SQL's round)."""
    nps_polls = {
        (p["guideId"], p["id"]) for p in truth.records("polls", config) if p["type"].lower() == "npsrating"
    }
    score = {
        (c["guideId"], c["pollId"], c["choiceId"]): c["value"] for c in truth.records("poll_choices", config)
    }
    latest: dict[str, dict[str, Any]] = {}
    for event in truth.records("poll_events", config):
        key = (event["guideId"], event["pollId"], str(event["pollResponse"]))
        if (event["guideId"], event["pollId"]) in nps_polls and key in score:
            # an answer without browserTime (BEHAVIOR.md §R-20) is the latest only if it is the visitor's only one
            # (the query orders `browserTime desc nulls last`)
            when = (event.get("browserTime") is not None, event.get("browserTime") or 0)
            seen = latest.get(event["visitorId"])
            assert seen is None or seen["when"] != when, "a tie would make SQL's pick arbitrary"
            if seen is None or when > seen["when"]:
                latest[event["visitorId"]] = dict(event, score=score[key], when=when)
    accounts: dict[str, list[int]] = {}
    for answer in latest.values():
        accounts.setdefault(answer["accountId"], []).append(answer["score"])
    rows = []
    for account, scores in sorted(accounts.items()):
        net = Fraction(100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)), len(scores))
        rounded = Decimal(net.numerator) / Decimal(net.denominator)
        rows.append([account, len(scores), float(rounded.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))])
    return rows


def test_pyairbyte_docs_nps_query_gives_the_nps_of_every_account(world, tmp_path):
    """docs/pendo.md's NPS-per-account query, run in the DuckDB cache PyAirbyte fills from poll_events, polls and
    poll_choices, equals the NPS computed from the ground truth, in both worlds (the pessimistic one lists poll
    types in lower case and choices in attributes.choices: BEHAVIOR.md §R-18, §R-19)."""
    sql = docs_query("### Worked example: NPS per account")
    result = _pyairbyte_reads(
        world.config, tmp_path, NPS_STREAMS, reads=1, sql=sql, env_extra=world.env or None
    )
    expected = nps_by_account(world.truth, world.config)
    assert len(expected) > 2 and any(row[2] > -100 for row in expected), "the data has a varied NPS"
    assert [c.lower() for c in result["sql"]["columns"]] == ["accountid", "respondents", "nps"]
    assert [[a, n, float(v)] for a, n, v in result["sql"]["rows"]] == expected
