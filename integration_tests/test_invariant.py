"""The fault invariant catches each way a sync can lose or invent data (so a fault test that passes means something)."""

from __future__ import annotations

from typing import Any

import pytest

from integration_tests.conftest import ConnectorRun
from integration_tests.invariant import DAY_MS, KILLED, assert_never_lost

T0 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
ROWS = [
    {
        "appId": 1,
        "visitorId": "a",
        "accountId": "x",
        "server": "s",
        "remoteIp": None,
        "userAgent": "u",
        "periodStart": T0 + i * DAY_MS,
        "day": T0 + i * DAY_MS,
        "numEvents": i,
    }
    for i in range(4)
]


def record(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "record": {"stream": "events", "data": row, "emitted_at": 0}}


def state(frontier: int) -> dict[str, Any]:
    stream_state = {
        "version": 1,
        "period": "DAY",
        "start_date": "x",
        "apps": {"*": {"periodStart": frontier}},
    }
    return {
        "type": "STATE",
        "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": "events"}, "stream_state": stream_state},
        },
    }


ERROR = {
    "type": "TRACE",
    "trace": {"type": "ERROR", "error": {"message": "boom", "failure_type": "system_error"}},
}


def sync(
    returncode: int, *messages: dict[str, Any], state_in: list[dict[str, Any]] | None = None
) -> ConnectorRun:
    return ConnectorRun(returncode, "", "", list(messages), state_in=state_in)


def check(*syncs: ConnectorRun, complete: bool = True) -> None:
    assert_never_lost(syncs, {"events": ROWS}, lookback_days=1, complete=complete)


def test_invariant_holds_for_a_sync_killed_and_resumed_inside_the_lookback():
    killed = sync(KILLED, record(ROWS[0]), record(ROWS[1]), state(T0 + 2 * DAY_MS))
    resumed = sync(
        0,
        record(ROWS[1]),
        record(ROWS[2]),
        record(ROWS[3]),
        state(T0 + 4 * DAY_MS),
        state_in=[killed.messages[-1]["state"]],
    )
    check(killed, resumed)


@pytest.mark.parametrize(
    ("syncs", "complaint"),
    [
        ([sync(0, record(ROWS[0]), record(ROWS[1]), record(ROWS[2]))], "never emitted"),
        ([sync(1, *map(record, ROWS))], "without an ERROR trace"),
        ([sync(0, *map(record, ROWS), ERROR)], "exit 0 with error traces"),
        ([sync(0, *map(record, ROWS), record(dict(ROWS[0], numEvents=99)))], "not in the ground truth"),
        ([sync(0, *map(record, ROWS), record(ROWS[0]))], "twice in one sync"),
        ([sync(1, record(ROWS[0]), state(T0 + 2 * DAY_MS), ERROR)], "was never emitted"),
        (
            [
                sync(
                    0,
                    record(ROWS[0]),
                    record(ROWS[1]),
                    state(T0 + 2 * DAY_MS),
                    record(ROWS[2]),
                    record(ROWS[3]),
                ),
                sync(0, *map(record, ROWS), state_in=[state(T0 + 2 * DAY_MS)["state"]]),
            ],
            "before its lookback window",
        ),
        ([sync(1, record(ROWS[0]), ERROR)], "the last sync exited 1"),
    ],
    ids=[
        "missing-at-exit-0",
        "failed-silently",
        "error-at-exit-0",
        "invented-record",
        "duplicate-in-a-sync",
        "state-ahead-of-records",
        "re-read-beyond-lookback",
        "scenario-ends-failed",
    ],
)
def test_invariant_fails_when(syncs, complaint):
    with pytest.raises(AssertionError, match=complaint):
        check(*syncs)


# ---------------------------------------------------------------------------------- a new tag's history
FEATURE_ROWS = [dict(row, featureId="new-tag") for row in ROWS]


def feature_record(row: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "record": {"stream": "feature_events", "data": row, "emitted_at": 0}}


def feature_state(frontier: int, pending: dict[str, int]) -> dict[str, Any]:
    message = state(frontier)
    message["state"]["stream"]["stream_descriptor"]["name"] = "feature_events"
    apps = message["state"]["stream"]["stream_state"]["apps"]
    apps["*"]["backfill"] = {"watermark": 0, "objects": pending}
    return message


def check_features(*syncs: ConnectorRun) -> None:
    assert_never_lost(syncs, {"feature_events": FEATURE_ROWS}, lookback_days=1)


def test_invariant_lets_a_state_promise_a_pending_tag_history_later_and_the_resume_reread_it():
    frontier = T0 + 4 * DAY_MS
    killed = sync(
        KILLED,
        feature_state(frontier, {"new-tag": T0}),  # the whole history still to come
        feature_record(FEATURE_ROWS[0]),
        feature_record(FEATURE_ROWS[1]),
        feature_state(frontier, {"new-tag": T0 + DAY_MS}),  # the first day done
    )
    resumed = sync(
        0,
        *map(feature_record, FEATURE_ROWS[1:]),  # from the saved position on
        feature_state(frontier, {}),
        state_in=[killed.messages[-1]["state"]],
    )
    check_features(killed, resumed)


def test_invariant_fails_when_a_tag_leaves_the_backfill_before_its_history_was_emitted():
    frontier = T0 + 4 * DAY_MS
    ended_early = sync(
        0,
        feature_state(frontier, {"new-tag": T0}),
        feature_record(FEATURE_ROWS[3]),
        feature_state(frontier, {}),  # no longer pending: rows before frontier - lookback are promised
        *map(feature_record, FEATURE_ROWS[:3]),
    )
    with pytest.raises(AssertionError, match="was never emitted"):
        check_features(ended_early)
