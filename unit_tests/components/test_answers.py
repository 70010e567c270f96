"""The answer ledger (source_pendo/activity/answers.py): whether a short answer may be a server's cap, judged
from the answers of its window and of its lane's earlier windows only, so the requests do not depend on which
thread finishes first."""

from __future__ import annotations

import threading

from source_pendo.activity.answers import AnswerLedger, WindowAnswers


def _judge_in_thread(window: WindowAnswers, rows: int) -> tuple[threading.Thread, list[bool]]:
    verdict: list[bool] = []

    def judge() -> None:
        window.note(rows)
        verdict.append(window.may_be_capped(rows))

    thread = threading.Thread(target=judge, daemon=True)
    thread.start()
    return thread, verdict


def test_a_window_without_a_lane_judges_by_its_own_answers():
    window = WindowAnswers()
    window.note(0)
    assert not window.may_be_capped(0), "an empty answer is complete"
    window.note(5)
    assert window.may_be_capped(5), "the first answer that is not empty may be capped"
    window.note(3)
    assert not window.may_be_capped(3), "shorter than an earlier answer: complete"
    window.note(5)
    assert window.may_be_capped(5), "as long as the longest: may be capped"


def test_a_short_answer_shorter_than_a_finished_earlier_window_is_complete():
    ledger = AnswerLedger()
    ledger.open("app", 0)
    ledger.open("app", 10)
    first, second = ledger.window("app", 0), ledger.window("app", 10)
    first.note(8)
    first.close()
    second.note(5)
    assert not second.may_be_capped(5)
    second.note(8)
    assert second.may_be_capped(8), "as long as the lane's longest answer"


def test_a_window_waits_for_the_windows_before_it_and_judges_by_their_answers():
    ledger = AnswerLedger()
    ledger.open("app", 0)
    ledger.open("app", 10)
    first, second = ledger.window("app", 0), ledger.window("app", 10)
    thread, verdict = _judge_in_thread(second, 5)
    thread.join(timeout=0.2)
    assert thread.is_alive() and verdict == [], "the earlier window has not finished: no verdict yet"
    first.note(4)
    first.close()
    thread.join(timeout=30)
    assert verdict == [True], "the earlier window answered less: the short answer may be capped"


def test_a_waiting_window_is_decided_as_soon_as_an_earlier_one_answered_more():
    ledger = AnswerLedger()
    for start in (0, 10, 20):
        ledger.open("app", start)
    thread, verdict = _judge_in_thread(ledger.window("app", 20), 5)
    ledger.window("app", 10).note(9)  # window 0 is still open: its answers cannot lower what is known
    thread.join(timeout=30)
    assert verdict == [False]


def test_a_later_window_answer_does_not_change_an_earlier_window_judgement():
    ledger = AnswerLedger()
    ledger.open("app", 0)
    ledger.open("app", 10)
    later = ledger.window("app", 10)
    later.note(100)
    later.close()
    earlier = ledger.window("app", 0)
    earlier.note(5)
    assert earlier.may_be_capped(5), "judged as it would be had the later window not been read yet"


def test_lanes_are_judged_apart():
    ledger = AnswerLedger()
    ledger.open("app-1", 0)
    ledger.open(("app-1", "tag"), 0)
    ledger.open("app-2", 10)
    ledger.window("app-1", 0).note(50)
    for lane, start in ((("app-1", "tag"), 0), ("app-2", 10)):
        window = ledger.window(lane, start)
        window.note(5)
        assert window.may_be_capped(5)


def test_stopping_the_stream_releases_a_waiting_window():
    ledger = AnswerLedger()
    ledger.open("app", 0)
    ledger.open("app", 10)
    thread, verdict = _judge_in_thread(ledger.window("app", 10), 5)
    ledger.stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and verdict == [True]


def test_a_window_opened_out_of_order_or_twice_is_still_an_earlier_window():
    ledger = AnswerLedger()
    ledger.open("app", 10)
    ledger.open("app", 20)
    ledger.window("app", 10).close()
    ledger.open("app", 0)  # before a window already folded
    ledger.open("app", 10)  # again: no second entry
    first = ledger.window("app", 0)
    first.note(9)
    first.close()
    last = ledger.window("app", 20)
    last.note(5)
    assert not last.may_be_capped(5), "the window at 0 answered more"
