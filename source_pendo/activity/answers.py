"""How long Pendo's answers were, per window, to judge whether a short page may be a capped one.

A server that caps answers below `limit` (BEHAVIOR.md §B-17) makes a truncated page look like the last one:
"shorter than `limit` = complete" would lose rows with exit 0. A cap is at least every answer size seen, so a
short page shorter than an earlier answer is complete; a short page that is not empty and at least as long as
every earlier answer may be capped, and the read goes on after its last row (on a normal server that asks
for nothing new: one or two requests that answer no new rows).

"Earlier" is deterministic, so the requests a sync sends do not depend on which thread finishes first: the
answers of the same window, and of the windows before it in its lane (an app, or a tag's history), which are
handed out in time order. A window whose short page is not shorter than what it knows so far waits until
every window before it in the lane has finished; most short pages are decided at once, because an earlier
window already answered more. Proof that the server caps costs requests only: every capped page is followed
by the read that a full page gets.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Hashable

WAIT_S = 600  # bounded: a window that never reports must not hang the sync (its successor then reads on)


class _Lane:
    """The windows of one lane in time order; those finished from the first on are folded into one maximum."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.largest: list[int] = []
        self.finished: list[bool] = []
        self.folded = 0  # windows [0, folded) are finished and their largest answer is in folded_max
        self.folded_max = 0

    def index(self, start: int) -> int:
        return bisect.bisect_left(self.starts, start)

    def fold(self) -> None:
        while self.folded < len(self.starts) and self.finished[self.folded]:
            self.folded_max = max(self.folded_max, self.largest[self.folded])
            self.folded += 1


class AnswerLedger:
    """Every window handed out in a stream (the cursor opens them, in time order per lane) and the largest
    answer each got."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._lanes: dict[Hashable, _Lane] = {}
        self._stopped = False

    def open(self, lane: Hashable, start: int) -> None:
        """A window handed out (the cursor hands a lane's windows out in time order; another order, or the
        same window twice, is still kept right)."""
        with self._changed:
            entry = self._lanes.setdefault(lane, _Lane())
            i = entry.index(start)
            if i < len(entry.starts) and entry.starts[i] == start:
                return
            entry.starts.insert(i, start)
            entry.largest.insert(i, 0)
            entry.finished.insert(i, False)
            if i < entry.folded:  # an open window inside the folded prefix: fold again up to it
                entry.folded = i
                entry.folded_max = max(entry.largest[:i], default=0)

    def window(self, lane: Hashable, start: int) -> WindowAnswers:
        return WindowAnswers(self, lane, start)

    def stop(self) -> None:
        """The stream fails: nobody waits any more."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def _find(self, lane: Hashable, start: int) -> tuple[_Lane, int] | None:
        entry = self._lanes.get(lane)
        if entry is None:
            return None
        i = entry.index(start)
        return (entry, i) if i < len(entry.starts) and entry.starts[i] == start else None

    def _note(self, lane: Hashable, start: int, rows: int) -> None:
        with self._changed:
            found = self._find(lane, start)
            if found is not None and rows > found[0].largest[found[1]]:
                found[0].largest[found[1]] = rows
                self._changed.notify_all()

    def _finish(self, lane: Hashable, start: int) -> None:
        with self._changed:
            found = self._find(lane, start)
            if found is not None:
                found[0].finished[found[1]] = True
                found[0].fold()
                self._changed.notify_all()

    def _largest_before(self, lane: Hashable, start: int, rows: int) -> int:
        """The largest answer of the lane's windows before `start`: as soon as one is known to exceed `rows`,
        else once each of them has finished (or the stream stopped, or WAIT_S passed)."""
        with self._changed:
            while True:
                entry = self._lanes.get(lane)
                if entry is None:
                    return 0
                end = entry.index(start)
                tail = range(entry.folded, end)
                known = max([entry.folded_max] + [entry.largest[i] for i in tail])
                if known > rows or entry.folded >= end or self._stopped:
                    return known
                if not self._changed.wait(timeout=WAIT_S):
                    return known


class WindowAnswers:
    """One window's side of the ledger (or a window on its own, without a lane: `ledger` None)."""

    def __init__(self, ledger: AnswerLedger | None = None, lane: Hashable = None, start: int = 0) -> None:
        self._ledger, self._lane, self._start = ledger, lane, start
        self._largest = 0

    def note(self, rows: int) -> None:
        """A complete answer of `rows` rows."""
        self._largest = max(self._largest, rows)
        if self._ledger is not None:
            self._ledger._note(self._lane, self._start, rows)

    def may_be_capped(self, rows: int) -> bool:
        """Whether a noted short answer of `rows` rows may have been cut by a server cap: not empty, and at
        least as long as every earlier answer (of this window and the lane's earlier windows)."""
        if rows <= 0 or rows < self._largest:
            return False
        if self._ledger is None:
            return True
        return rows >= self._ledger._largest_before(self._lane, self._start, rows)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger._finish(self._lane, self._start)
