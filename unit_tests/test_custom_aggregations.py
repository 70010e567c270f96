"""Custom aggregation streams (spec option `custom_aggregations`): config validation and the exact request bodies.

"Now" is pinned to 2024-03-03T00:00Z and start_date is 2024-03-01, so an activity custom stream reads two DAY
periods (Mar 1, Mar 2), one request per period (custom/retriever.py).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from airbyte_cdk.models import SyncMode, Type
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from builders import (
    ALL_APPS,
    API_BASE,
    DAY_MS,
    MAR_1,
    MAR_2,
    NOW_ENV,
    NOW_MS,
    ConfigBuilder,
    aggregation_response,
    count_response,
    json_response,
    mock_metadata_schema,
    read_stream,
    record_data,
    text_response,
)

from source_pendo.settings.config import complete_config, validate_config
from source_pendo.settings.custom_aggregations import parse_custom_aggregations
from source_pendo.settings.spec import built_in_streams
from source_pendo.source import SourcePendo

CLICKS_PIPELINE = [{"group": {"group": ["accountId"], "fields": {"clicks": {"sum": "numEvents"}}}}]
CLICKS_SCHEMA = {"type": "object", "properties": {"accountId": {"type": ["null", "string"]}}}


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _config(*entries: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return (
        ConfigBuilder()
        .with_(**{"start_date": "2024-03-01", "custom_aggregations": list(entries), **extra})
        .build()
    )


def _clicks(**changes: Any) -> dict[str, Any]:
    entry = {
        "name": "daily_clicks",
        "source": '{"featureEvents": null}',
        "pipeline": orjson.dumps(CLICKS_PIPELINE).decode(),
        "primary_key": ["accountId"],
        "schema": orjson.dumps(CLICKS_SCHEMA).decode(),
    }
    entry.update(changes)
    return entry


def _aggregation(name: str, pipeline: list[dict[str, Any]]) -> HttpRequest:
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {"name": f"source-pendo-{name}", "pipeline": pipeline},
        },
    )


def _period_source(
    source: str, bucket: int, app: Any = ALL_APPS, period: str = "dayRange", length: int = DAY_MS
) -> dict[str, Any]:
    last = bucket + length - 1
    return {"source": {source: {"appId": app}, "timeSeries": {"period": period, "first": last, "count": 1}}}


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "DailyClicks"},
            "custom_aggregations[0] ('DailyClicks'): `name` 'DailyClicks' is not a snake_case stream name",
        ),
        (
            {"name": "feature_events"},
            "custom_aggregations[0] ('feature_events'): `name` 'feature_events' is a built-in stream",
        ),
        (
            {"source": '{"featureEvents": '},
            "custom_aggregations[0] ('daily_clicks'): `source` is not valid JSON",
        ),
        ({"source": "clicks"}, "`source` 'clicks' is not a Pendo source this connector reads"),
        (
            {"source": {"featureEvents": None, "pageEvents": None}},
            "`source` must name exactly one Pendo source",
        ),
        (
            {"source": {"featureEvents": None, "timeSeries": {"period": "dayRange"}}},
            "`source` must not carry a timeSeries",
        ),
        (
            {"source": {"featureEvents": "all"}},
            "the parameters of source featureEvents must be an object or null",
        ),
        ({"pipeline": "[{]"}, "custom_aggregations[0] ('daily_clicks'): `pipeline` is not valid JSON"),
        ({"pipeline": '{"group": {}}'}, "`pipeline` must be a JSON list of stages"),
        (
            {"pipeline": '[{"filter": "a > 1", "sort": ["a"]}]'},
            "`pipeline` must be a JSON list of stages, each an object with one operator",
        ),
        ({"pipeline": '[{"source": {"events": null}}]'}, "put the source in `source`"),
        ({"primary_key": [1]}, "`primary_key` must be a list of field names"),
        ({"schema": "[1]"}, "`schema` must be a JSON schema object"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_custom_aggregation_entry_errors_are_one_config_error_naming_the_entry(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(AirbyteTracedException) as error:
        validate_config(_config(_clicks(**entry)))
    assert error.value.failure_type.value == "config_error"
    assert message in error.value.message


def test_custom_aggregation_duplicate_name_names_the_second_entry() -> None:
    with pytest.raises(AirbyteTracedException) as error:
        parse_custom_aggregations(_config(_clicks(), _clicks(source="pageEvents")))
    assert error.value.message == (
        "custom_aggregations[1] ('daily_clicks'): `name` 'daily_clicks' is used by an earlier entry; stream names must be unique."
    )


def test_custom_aggregation_json_text_and_json_values_are_the_same_entry() -> None:
    as_text = parse_custom_aggregations(_config(_clicks()))
    as_values = parse_custom_aggregations(
        _config(
            _clicks(
                source={"featureEvents": None},
                pipeline=CLICKS_PIPELINE,
                schema=CLICKS_SCHEMA,
                primary_key="accountId",
            )
        )
    )
    bare_name = parse_custom_aggregations(_config(_clicks(source="featureEvents")))
    assert as_text == as_values == bare_name


def test_custom_aggregation_config_is_stored_in_the_spec_form_and_split_for_the_templates() -> None:
    config = complete_config(
        _config(_clicks(pipeline=CLICKS_PIPELINE), _clicks(name="emails", source="visitors", primary_key=[]))
    )
    assert config["custom_aggregations"][0]["pipeline"] == orjson.dumps(CLICKS_PIPELINE).decode()
    assert [e["name"] for e in config["_custom_activity_aggregations"]] == ["daily_clicks"]
    assert config["_custom_activity_aggregations"][0]["primary_key"] == ["periodStart", "accountId"]
    assert [e["name"] for e in config["_custom_other_aggregations"]] == ["emails"]


def test_built_in_stream_names_are_the_streams_discover_lists() -> None:
    config = {"api_key": "key", "start_date": "2024-01-01"}
    discovered = {stream.name for stream in SourcePendo(config=config).streams(complete_config(config))}
    assert built_in_streams() == discovered


# ------------------------------------------------------------------------------------------ request bodies
def test_custom_activity_stream_asks_one_period_per_request_and_adds_period_start(
    http_mocker: HttpMocker,
) -> None:
    for bucket, account in ((MAR_1, "Acme"), (MAR_2, "Globex")):
        selection = [_period_source("featureEvents", bucket), {"identified": "visitorId"}, *CLICKS_PIPELINE]
        # Pendo's count of the period's output rows first (BEHAVIOR.md §B-22), then the read, which holds it
        http_mocker.post(_aggregation("daily_clicks", [*selection, {"count": None}]), count_response(1))
        http_mocker.post(
            _aggregation("daily_clicks", [*selection, {"sort": ["accountId"]}, {"limit": 50000}]),
            aggregation_response([{"accountId": account, "clicks": 3}]),
        )
    output = read_stream("daily_clicks", _config(_clicks()), SyncMode.incremental)
    assert record_data(output) == [
        {"periodStart": MAR_1, "accountId": "Acme", "clicks": 3},
        {"periodStart": MAR_2, "accountId": "Globex", "clicks": 3},
    ]
    assert output.most_recent_state.stream_state.apps == {"*": {"periodStart": NOW_MS - 25 * 3_600_000}}
    # these answers' startTime (0) is no bucket start: the UTC period names the bucket, said once (§B-21)
    unnamed = [m.log.message for m in output.logs if "no `startTime` that is a bucket start" in m.log.message]
    assert len(unnamed) == 1 and unnamed[0].startswith("daily_clicks: ")


HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("change", "counts", "records"),
    [
        # A spring change on Mar 2: its local day starts at 00:00 UTC and lasts 23 hours, the next one starts at
        # 23:00 UTC on Mar 2. The bucket holding Mar 2's last millisecond starts 47 hours after Mar 1's: the
        # bucket between them is asked by the millisecond before it, and read too.
        (
            "spring",
            [
                (MAR_1 + DAY_MS - 1, MAR_1),
                (MAR_2 + DAY_MS - 1, MAR_2 + 23 * HOUR_MS),
                (MAR_2 + 23 * HOUR_MS - 1, MAR_2),
            ],
            [MAR_1, MAR_2, MAR_2 + 23 * HOUR_MS],
        ),
        # An autumn change: the local day holding Mar 1's last millisecond started at 23:00 UTC on Feb 29 (before
        # the window: not read here) and lasts 25 hours; Mar 2's starts at 00:00 UTC, the period's start, so no
        # bucket can start in the period before it: nothing else asked, nothing read twice.
        (
            "autumn",
            [(MAR_1 + DAY_MS - 1, MAR_1 - HOUR_MS), (MAR_2 + DAY_MS - 1, MAR_2)],
            [MAR_2],
        ),
        # The 25-hour day read by the period holding its start, then asked again by the next period's last
        # millisecond: the same bucket, before that period, not read again. (Mar 1 is the window's first period
        # and its bucket starts 23 hours into it: the millisecond before that bucket is asked too, and its
        # bucket started before the period.)
        (
            "autumn-next",
            [
                (MAR_1 + DAY_MS - 1, MAR_1 + 23 * HOUR_MS),
                (MAR_1 + 23 * HOUR_MS - 1, MAR_1 - HOUR_MS),
                (MAR_2 + DAY_MS - 1, MAR_1 + 23 * HOUR_MS),
            ],
            [MAR_1 + 23 * HOUR_MS],
        ),
    ],
)
def test_custom_activity_stream_reads_each_bucket_pendo_names_once_across_a_daylight_saving_change(
    http_mocker: HttpMocker, change: str, counts: list[tuple[int, int]], records: list[int]
) -> None:
    """Each bucket is named by the `startTime` of Pendo's answer (BEHAVIOR.md §B-21): `periodStart` is that start,
    every bucket starting in a period read is read once. Exact requests (every mocked one is asked) and records."""

    def source(at: int) -> dict[str, Any]:
        series = {"period": "dayRange", "first": at, "count": 1}
        return {"source": {"featureEvents": {"appId": ALL_APPS}, "timeSeries": series}}

    read = set()  # a bucket is read by the first request that names it
    for at, bucket in counts:
        selection = [source(at), {"identified": "visitorId"}, *CLICKS_PIPELINE]
        http_mocker.post(
            _aggregation("daily_clicks", [*selection, {"count": None}]),
            json_response({"startTime": bucket, "results": [{"count": 1}]}),
        )
        if bucket in records and bucket not in read:
            read.add(bucket)
            http_mocker.post(
                _aggregation("daily_clicks", [*selection, {"sort": ["accountId"]}, {"limit": 50000}]),
                json_response({"startTime": bucket, "results": [{"accountId": "Acme", "clicks": 3}]}),
            )
    output = read_stream("daily_clicks", _config(_clicks()), SyncMode.incremental)
    assert record_data(output) == [
        {"periodStart": bucket, "accountId": "Acme", "clicks": 3} for bucket in records
    ]


def test_custom_activity_stream_pages_on_its_one_field_key(
    http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 2: `sort` on the key after the pipeline, then `key > last` (escaped as a Pendo literal)."""
    monkeypatch.setenv("SOURCE_PENDO_TEST_PAGE_SIZE", "2")
    config = _config(_clicks(), app_ids=["-323232"], include_anonymous_visitors=True)
    for bucket in (MAR_1, MAR_2):
        selection = [_period_source("featureEvents", bucket, app=["-323232"]), *CLICKS_PIPELINE]
        head = [*selection, {"sort": ["accountId"]}]
        http_mocker.post(_aggregation("daily_clicks", [*selection, {"count": None}]), count_response(3))
        http_mocker.post(
            _aggregation("daily_clicks", [*head, {"limit": 2}]),
            aggregation_response([{"accountId": "A"}, {"accountId": 'B "2"'}]),
        )
        http_mocker.post(
            _aggregation("daily_clicks", [*head, {"filter": 'accountId > "B \\"2\\""'}, {"limit": 2}]),
            aggregation_response([{"accountId": "C"}]),
        )
    output = read_stream("daily_clicks", config, SyncMode.incremental)
    assert len(output.records) == 6
    assert {r.record.data["accountId"] for r in output.records} == {"A", 'B "2"', "C"}


def test_custom_hourly_stream_asks_hour_periods(http_mocker: HttpMocker) -> None:
    config = _config(
        _clicks(source="guideEvents", primary_key=[]), period="HOUR", start_date="2024-03-02T22:00:00Z"
    )
    for bucket in (NOW_MS - 2 * 3_600_000, NOW_MS - 3_600_000):
        selection = [
            _period_source("guideEvents", bucket, period="hourRange", length=3_600_000),
            {"identified": "visitorId"},
            *CLICKS_PIPELINE,
        ]
        http_mocker.post(_aggregation("daily_clicks", [*selection, {"count": None}]), count_response(1))
        http_mocker.post(  # no key: one request whose limit holds the count (at least page_size)
            _aggregation("daily_clicks", [*selection, {"limit": 50000}]),
            aggregation_response([{"accountId": "Acme", "clicks": 1}]),
        )
    output = read_stream("daily_clicks", config, SyncMode.incremental)
    assert sorted(r.record.data["periodStart"] for r in output.records) == [
        NOW_MS - 2 * 3_600_000,
        NOW_MS - 3_600_000,
    ]


def _emails() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A full-refresh custom stream of identified visitors' emails, and the selection its requests send."""
    entry = _clicks(
        name="emails",
        source='{"visitors": {"identified": true}}',
        pipeline='[{"select": {"visitorId": "visitorId", "email": "metadata.agent.email"}}]',
        primary_key=["visitorId"],
        schema='{"type": "object"}',
    )
    selection = [
        {"source": {"visitors": {"identified": True, "appId": ALL_APPS}}},
        {"select": {"visitorId": "visitorId", "email": "metadata.agent.email"}},
    ]
    return entry, selection


def test_custom_full_refresh_stream_sends_the_source_and_pipeline_then_paging(
    http_mocker: HttpMocker,
) -> None:
    entry, selection = _emails()
    http_mocker.post(_aggregation("emails", [*selection, {"count": None}]), count_response(1))
    http_mocker.post(  # the answer holds Pendo's count: complete
        _aggregation("emails", [*selection, {"sort": ["visitorId"]}, {"limit": 50000}]),
        aggregation_response([{"visitorId": "v1", "email": "jane@example.com"}]),
    )
    output = read_stream("emails", _config(entry))
    assert record_data(output) == [{"visitorId": "v1", "email": "jane@example.com"}]


def _catalogue_entry() -> dict[str, Any]:
    return _clicks(
        name="catalogue",
        source='{"pages": {"appId": ["5"]}}',
        pipeline="[]",
        primary_key=[],
        schema='{"type": "object"}',
    )


def test_custom_stream_without_one_field_key_asks_in_one_request_whose_limit_holds_the_count(
    http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key to page on: Pendo's count sets the one request's `limit` (at least page_size, the count and a
    tenth more for rows that arrive meanwhile), so the answer is never cut."""
    monkeypatch.setenv("SOURCE_PENDO_TEST_PAGE_SIZE", "1")
    source = {"source": {"pages": {"appId": ["5"]}}}
    http_mocker.post(_aggregation("catalogue", [source, {"count": None}]), count_response(3))
    http_mocker.post(
        _aggregation("catalogue", [source, {"limit": 4}]),
        aggregation_response([{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]),
    )
    output = read_stream("catalogue", _config(_catalogue_entry()))
    assert record_data(output) == [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]


def test_custom_stream_without_one_field_key_stops_when_more_rows_than_its_limit_arrived(
    http_mocker: HttpMocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_PENDO_TEST_PAGE_SIZE", "1")
    source = {"source": {"pages": {"appId": ["5"]}}}
    http_mocker.post(_aggregation("catalogue", [source, {"count": None}]), count_response(1))
    http_mocker.post(
        _aggregation("catalogue", [source, {"limit": 2}]), aggregation_response([{"id": "p1"}, {"id": "p2"}])
    )
    output = read_stream("catalogue", _config(_catalogue_entry()), expecting_exception=True)
    error = output.errors[0]  # the stream's error (the CDK adds one summing up the failed streams)
    assert error.trace.error.failure_type.value == "transient_error"
    assert error.trace.error.message.startswith(
        "catalogue: Pendo answered 2 rows to the full-refresh request, as many as its limit (set from Pendo's "
        "count of 1), so the answer may be cut"
    )


def test_custom_stream_discover_samples_the_last_complete_period(http_mocker: HttpMocker) -> None:
    config = _config(_clicks(schema=None))
    for stream in ("accounts", "visitors"):
        mock_metadata_schema(http_mocker, stream)
    http_mocker.post(
        _aggregation(
            "daily_clicks",
            [
                _period_source("featureEvents", NOW_MS - DAY_MS),
                {"identified": "visitorId"},
                *CLICKS_PIPELINE,
                {"sort": ["accountId"]},
                {"limit": 50},
            ],
        ),
        aggregation_response([{"accountId": "Acme", "clicks": 3}, {"accountId": None, "clicks": 1.5}]),
    )
    output = discover(SourcePendo(config=config), config)
    [catalog] = [m.catalog for m in output.get_message_by_types([Type.CATALOG])]
    [stream] = [s for s in catalog.streams if s.name == "daily_clicks"]
    assert stream.json_schema["properties"] == {
        "accountId": {"type": ["null", "string"]},
        "clicks": {"type": ["null", "number"]},
        "periodStart": {"type": "integer"},
    }
    assert "inferred from a sample of 2 row(s)" in stream.json_schema["description"]


def test_custom_stream_pipeline_pendo_rejects_during_a_read_fails_naming_the_stream(
    http_mocker: HttpMocker,
) -> None:
    """A pipeline `check` did not run (or Pendo changed its mind): the read stops naming the stream and quoting Pendo."""
    entry = _clicks(
        name="emails",
        source="visitors",
        pipeline='[{"bogus": 1}]',
        primary_key=[],
        schema='{"type": "object"}',
    )
    http_mocker.post(  # the first request of the stream, its count, is refused
        _aggregation(
            "emails", [{"source": {"visitors": {"appId": ALL_APPS}}}, {"bogus": 1}, {"count": None}]
        ),
        text_response("Unsupported pipeline operator 'bogus'", 400),
    )
    output = read_stream("emails", _config(entry), expecting_exception=True)
    message = output.errors[0].trace.error.message
    assert "emails" in message and "Unsupported pipeline operator 'bogus'" in message


def test_custom_stream_escaped_lone_surrogate_arrives_as_replacement_character(
    http_mocker: HttpMocker,
) -> None:
    """`"\\ud800"` is valid JSON that no UTF-8 output can carry: the row arrives with U+FFFD in its place (as an
    activity row does), never an error saying the answer is not an aggregation result."""
    entry, selection = _emails()
    http_mocker.post(_aggregation("emails", [*selection, {"count": None}]), count_response(1))
    http_mocker.post(
        _aggregation("emails", [*selection, {"sort": ["visitorId"]}, {"limit": 50000}]),
        HttpResponse(
            body='{"startTime": 0, "results": [{"visitorId": "v1", "email": "jane\\ud800@example.com"}]}'
        ),
    )
    output = read_stream("emails", _config(entry))
    assert record_data(output) == [{"visitorId": "v1", "email": "jane\ufffd@example.com"}]
