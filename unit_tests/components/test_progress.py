"""An activity stream's progress from Pendo's counts: the ESTIMATE after each window and the closing line."""

from __future__ import annotations

from airbyte_cdk.models import EstimateType, TraceType

from source_pendo.activity.progress import StreamProgress

DAY = 86_400_000


def _estimate(progress: StreamProgress, lane: object, span: int, counted: int, read: int) -> int:
    message = progress.observe(lane, span, counted, read)
    assert message.trace is not None and message.trace.type == TraceType.ESTIMATE
    assert message.trace.estimate is not None
    assert (message.trace.estimate.name, message.trace.estimate.type) == ("events", EstimateType.STREAM)
    return int(message.trace.estimate.row_estimate or 0)


def test_progress_estimate_is_the_rows_counted_plus_each_lanes_time_left_at_its_density() -> None:
    progress = StreamProgress("events")
    progress.plan("-323232", 10 * DAY)
    progress.plan("5629499534213120", 4 * DAY)
    # 100 rows in the first day of the first app: 9 days left at 100 a day
    assert _estimate(progress, "-323232", DAY, 100, 100) == 100 + 900
    # the second app: 40 rows in 2 of its 4 days (2 left at 20 a day); the first app unchanged
    assert _estimate(progress, "5629499534213120", 2 * DAY, 40, 40) == 1000 + 40 + 40
    # the first app's last 9 days hold 50 rows in all: its estimate is exact now
    assert _estimate(progress, "-323232", 9 * DAY, 50, 50) == 150 + 80


def test_progress_summary_says_the_rows_equal_pendos_count_with_windows_apps_and_tag_histories() -> None:
    progress = StreamProgress("events")
    assert progress.summary() is None  # nothing read: no line
    progress.observe("*", DAY, 200_000, 200_000)
    progress.observe("*", DAY, 252, 252)
    progress.observe(("*", "tag-1"), DAY, 7, 7)
    assert progress.summary() == "events: 200,259 rows = Pendo's count, 3 windows, 1 app, 1 tag history"


def test_progress_summary_names_rows_that_arrived_while_the_sync_ran() -> None:
    progress = StreamProgress("events")
    progress.observe("-1", DAY, 10, 12)
    progress.observe("-2", DAY, 5, 5)
    assert progress.summary() == (
        "events: 17 rows (Pendo counted 15; more arrived while the sync ran), 2 windows, 2 apps"
    )


def test_progress_of_visitor_history_does_not_claim_pendos_count_of_its_items() -> None:
    progress = StreamProgress("visitor_history", counted_by_pendo=False)
    progress.observe("*", DAY, 30, 30)
    summary = progress.summary() or ""
    assert summary.startswith("visitor_history: 30 rows (each window's active visitors checked against")
    assert "= Pendo's count" not in summary
