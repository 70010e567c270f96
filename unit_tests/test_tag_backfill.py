"""A new tag's history (source_pendo/activity/backfill.py): feature_events and page_events read the catalogue,
and the whole history of each object created or re-ruled since the last sync, one object per request."""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest
from builders import (
    ACTIVITY_STREAMS,
    DAY_MS,
    HOUR_MS,
    MAR_1,
    MAR_2,
    NOW_ENV,
    NOW_MS,
    ActivityStream,
    ConfigBuilder,
    activity_state,
    get_request,
    json_response,
    read_stream,
    state,
)

_START_DATE = "2024-02-01"
FEB_1 = 1706745600000  # 2024-02-01T00:00Z
WATERMARK = MAR_2  # the newest change the last sync listed
FEATURES = next(s for s in ACTIVITY_STREAMS if s.name == "feature_events")
PAGES = next(s for s in ACTIVITY_STREAMS if s.name == "page_events")
OBJECT = {"feature_events": ("feature", "featureId"), "page_events": ("page", "pageId")}


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _object(oid: str, changed_at: int, app: int = -323232) -> dict[str, Any]:
    return {"id": oid, "appId": app, "createdAt": changed_at - DAY_MS, "lastUpdatedAt": changed_at}


def _lane_request(stream: ActivityStream, object_id: str, start: int, end: int) -> HttpRequest:
    """POST /aggregation for one object's window: the forward body with the object's id in the source."""
    return stream.request(start, end, object_id=(OBJECT[stream.name][1], object_id))


def _mock_lane(
    http_mocker: HttpMocker, stream: ActivityStream, object_id: str, start: int, end: int, rows: list
) -> None:
    """One window of an object's history lane answered with `rows`: its count, then its read
    (builders.mock_window_reads)."""
    stream.mock_window(http_mocker, start, end, rows, object_id=(OBJECT[stream.name][1], object_id))


def _forward(http_mocker: HttpMocker, stream: ActivityStream) -> None:
    """The forward window of a sync resuming at MAR_2 (lookback one day), counted whole: nothing new."""
    stream.mock_count(http_mocker, MAR_1, NOW_MS, 0)


def _row(stream: ActivityStream, object_id: str, day: int) -> dict[str, Any]:
    row = stream.rows(at=day)[0]
    row[OBJECT[stream.name][1]] = object_id
    return row


def _saved(backfill: dict[str, Any] | None) -> list:
    entry: dict[str, Any] = {"periodStart": MAR_2}
    if backfill is not None:
        entry["backfill"] = backfill
    return state("x", activity_state("DAY", _START_DATE, {"*": entry}))[0].stream.stream_state.__dict__


def _read(stream: ActivityStream, saved: dict[str, Any], **config: Any):
    built = ConfigBuilder().with_(start_date=_START_DATE, backfill_new_tags=True, **config).build()
    return read_stream(stream.name, built, SyncMode.incremental, state(stream.name, saved))


@pytest.mark.parametrize("stream", [FEATURES, PAGES], ids=repr)
def test_new_tag_history_is_read_from_start_date_with_the_object_id_in_the_source(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    endpoint = OBJECT[stream.name][0]
    catalogue = [_object("new-tag", WATERMARK + HOUR_MS), _object("old-tag", WATERMARK - 10 * DAY_MS)]
    http_mocker.get(get_request(endpoint, expand="*"), json_response(catalogue))
    _forward(http_mocker, stream)
    history = [_row(stream, "new-tag", FEB_1 + 9 * DAY_MS)]
    # one request covers the 29 days from start_date to the forward windows (a lane's windows start at 30 days)
    _mock_lane(http_mocker, stream, "new-tag", FEB_1, MAR_1, history)

    output = _read(stream, _saved({"watermark": WATERMARK, "objects": {}}))

    assert not output.errors
    assert [r.record.data for r in output.records] == stream.records(history)
    final = output.most_recent_state.stream_state.__dict__["apps"]["*"]
    assert final["backfill"] == {"watermark": WATERMARK + HOUR_MS, "objects": {}}


def test_an_unfinished_tag_history_resumes_where_the_last_sync_stopped(http_mocker: HttpMocker) -> None:
    catalogue = [_object("new-tag", WATERMARK - 10 * DAY_MS)]  # no longer new: read because it is unfinished
    http_mocker.get(get_request("feature", expand="*"), json_response(catalogue))
    _forward(http_mocker, FEATURES)
    resume_at = FEB_1 + 20 * DAY_MS
    history = [_row(FEATURES, "new-tag", resume_at)]
    _mock_lane(http_mocker, FEATURES, "new-tag", resume_at, MAR_1, history)

    output = _read(FEATURES, _saved({"watermark": WATERMARK, "objects": {"new-tag": resume_at}}))

    assert [r.record.data for r in output.records] == FEATURES.records(history)
    final = output.most_recent_state.stream_state.__dict__["apps"]["*"]
    assert final["backfill"] == {"watermark": WATERMARK, "objects": {}}


def test_a_tag_changed_within_the_settle_period_is_read_again_and_a_deleted_unfinished_one_is_dropped(
    http_mocker: HttpMocker,
) -> None:
    recent = NOW_MS - DAY_MS  # changed a day ago: Pendo may still be reprocessing it (tag_settle_days 2)
    http_mocker.get(get_request("feature", expand="*"), json_response([_object("recent-tag", recent)]))
    _forward(http_mocker, FEATURES)
    _mock_lane(http_mocker, FEATURES, "recent-tag", FEB_1, MAR_1, [])

    output = _read(FEATURES, _saved({"watermark": NOW_MS - HOUR_MS, "objects": {"deleted-tag": FEB_1}}))

    assert not output.errors
    final = output.most_recent_state.stream_state.__dict__["apps"]["*"]
    assert final["backfill"] == {"watermark": NOW_MS - HOUR_MS, "objects": {}}


def test_a_state_saved_before_backfill_existed_loads_and_reads_only_tags_within_the_settle_period(
    http_mocker: HttpMocker,
) -> None:
    catalogue = [_object("settled-tag", NOW_MS - 5 * DAY_MS)]
    http_mocker.get(get_request("feature", expand="*"), json_response(catalogue))
    _forward(http_mocker, FEATURES)

    output = _read(FEATURES, _saved(None))  # no lane request is mocked: none may be sent

    assert not output.errors
    final = output.most_recent_state.stream_state.__dict__["apps"]["*"]
    assert final["backfill"] == {"watermark": NOW_MS - 5 * DAY_MS, "objects": {}}


def test_a_state_saved_after_now_reads_no_tag_history_and_is_kept_as_saved(http_mocker: HttpMocker) -> None:
    """A state from the future (Airbyte's abnormal state): no catalogue, lane or forward request, no record."""
    future = NOW_MS + 30 * DAY_MS
    saved = _saved({"watermark": WATERMARK, "objects": {"new-tag": FEB_1}})
    saved["apps"]["*"]["periodStart"] = future

    output = _read(FEATURES, saved)  # nothing is mocked: any request fails the test

    assert not output.errors and not output.records
    assert output.most_recent_state.stream_state.__dict__["apps"]["*"] == saved["apps"]["*"]


@pytest.mark.parametrize(
    ("backfill", "named"),
    [
        ({"watermark": "yesterday", "objects": {}}, "apps[*].backfill.watermark"),
        ({"watermark": WATERMARK, "objects": {"new-tag": -5}}, "apps[*].backfill.objects[new-tag]"),
        ([1, 2], "apps[*].backfill is not an object"),
    ],
    ids=["watermark", "position", "shape"],
)
def test_an_invalid_backfill_state_is_a_config_error_naming_the_key(backfill: Any, named: str) -> None:
    built = ConfigBuilder().with_(start_date=_START_DATE, backfill_new_tags=True).build()
    output = read_stream(
        FEATURES.name,
        built,
        SyncMode.incremental,
        state(FEATURES.name, _saved(backfill)),
        expecting_exception=True,
    )

    errors = [e.trace.error for e in output.errors]
    assert errors and errors[0].failure_type.value == "config_error"
    assert named in errors[0].message and "feature_events" in errors[0].message


def test_a_catalogue_pendo_refuses_leaves_the_forward_read_whole_and_says_so(http_mocker: HttpMocker) -> None:
    http_mocker.get(get_request("feature", expand="*"), json_response({"message": "not found"}, status=404))
    _forward(http_mocker, FEATURES)
    # an unfinished tag's history goes on without the catalogue
    _mock_lane(http_mocker, FEATURES, "unfinished-tag", FEB_1, MAR_1, [])

    output = _read(FEATURES, _saved({"watermark": WATERMARK, "objects": {"unfinished-tag": FEB_1}}))

    assert not output.errors
    assert any("could not read the catalogue" in m.log.message for m in output.logs)
    final = output.most_recent_state.stream_state.__dict__["apps"]["*"]
    assert final["backfill"] == {"watermark": WATERMARK, "objects": {}}  # new tags are looked for next time
