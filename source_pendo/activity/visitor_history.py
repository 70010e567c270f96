"""visitor_history: `GET /visitor/{id}/history?starttime=` for the visitors active in each 24-hour window.

Why Python: the history endpoint answers one visitor and one 24-hour window per call and keeps 180 days
(BEHAVIOR.md §B-19), so the calls must be bounded by who was actually active. Per window this retriever
asks the `events` rollup (hourRange, paged as the events stream pages it) which visitors had activity in it, then fetches
the history of each of those visitors only: visitors with no activity since the cursor cost no call.
Items carry no visitor id on the wire; the record gets `visitorId`. Windows come from the activity cursor
(one day each, starting no earlier than 179 days ago), so state is checkpointed after every day.

When Pendo refuses history altogether (400 or 422 to the history call, BEHAVIOR.md §R-7; SkipNotFound logs
the one WARNING), this sync makes no more history calls: that window and every later one end unread and are
abandoned, so the stream's state does not move past what was read, and the other streams go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass
from typing import Any
from urllib.parse import quote

import msgspec
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.retrievers.retriever import Retriever
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import Config, StreamSlice

from ..http.skip_not_found import skipped
from ..pendo import EVENTS_PRIMARY_KEY
from .cursor import WindowFeedback
from .pages import WindowRun
from .records import check_within_reach, checked_time
from .retriever import ActivityRetriever
from .windows import iso_minute

LOGGER = logging.getLogger("airbyte")
REFUSED = (400, 422)  # history refused for every visitor (the requester's skip_statuses), not one visitor


@dataclass
class VisitorHistoryRetriever(Retriever):
    requester: HttpRequester  # POST /aggregation: who was active
    history_requester: HttpRequester  # GET /visitor/{id}/history
    config: Config
    parameters: InitVar[Mapping[str, Any]]
    name: str
    primary_key: Any = None
    cursor: WindowFeedback | None = None

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        # Who was active: the `events` rollup by hour over the window, read as the events stream reads it.
        self._events = ActivityRetriever(
            requester=self.requester,
            config=dict(self.config, period="HOUR"),
            parameters={},
            name=self.name,
            source="events",
            time_field="bucket",
            primary_key=EVENTS_PRIMARY_KEY,
        )
        self._history_refused = False  # set once Pendo refuses history (400/422): no more calls this sync

    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        assert stream_slice is not None
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        count = 0
        try:
            if self._history_refused:
                self._abandon(stream_slice)
                return
            visitors, _ = self._active_visitors(start, end)
            for visitor in visitors:
                if self._history_refused:  # another window's call was refused meanwhile
                    self._abandon(stream_slice)
                    return
                history_slice = StreamSlice(
                    partition={"visitor_id": quote(visitor, safe="")}, cursor_slice={"start": str(start)}
                )
                response = self.history_requester.send_request(stream_slice=history_slice)
                if response is not None and skipped(response) and response.status_code in REFUSED:
                    self._history_refused = True  # SkipNotFound logged the one warning
                    self._abandon(stream_slice)
                    return
                if response is None or skipped(response):  # a 404 SkipNotFound let through, with its warning
                    continue
                for item in response.json() or []:
                    ts = self._ts(item, start, end)
                    check_within_reach(ts, ts, start, end, self.name, "ts", f"visitor {visitor}")
                    if start <= ts < end:
                        count += 1
                        yield dict(item, ts=ts, visitorId=visitor)
            LOGGER.info(
                f"{self.name}: {iso_minute(start)} to {iso_minute(end)}: {count} records from {len(visitors)} active visitor(s)"
            )
            if self.cursor is not None:
                self.cursor.observe_window(stream_slice, count, count)
        except Exception:
            if self.cursor is not None:
                self.cursor.stop_windows()  # the stream fails: no window after this one is started
            raise
        finally:
            if self.cursor is not None:
                self.cursor.release_window()

    def _ts(self, item: Any, start: int, end: int) -> int:
        """The item's `ts` as an integer (an int, an integral float or a numeric string, BEHAVIOR.md §B-18)."""
        value = item.get("ts") if isinstance(item, dict) else None
        return checked_time(
            value, self.name, "ts", "a history item", f"window {iso_minute(start)} to {iso_minute(end)}"
        )

    def _abandon(self, stream_slice: StreamSlice) -> None:
        if self.cursor is not None:
            self.cursor.abandon_window(stream_slice)

    def _active_visitors(self, start: int, end: int) -> tuple[list[str], int]:
        """Distinct visitors with `events` rows in [start, end), and Pendo's count of those rows: the window's
        (hour, visitorId) rows, read with the events stream's paging and checked against the count (exact
        whether Pendo runs one pipeline over the 24 hourly periods or one per period, BEHAVIOR.md §R-1)."""
        collector = _VisitorCollector()
        reading = self._events.read_window("*", start, end, collector)
        while True:  # the collector makes no batches: run the read to its end for what it returns
            try:
                next(reading)
            except StopIteration as done:
                run: WindowRun = done.value
                return sorted(collector.visitors), run.expected or 0


class _VisitorCollector:
    """A record sink (retriever.RecordSink) that keeps the distinct visitor ids of the rows it is given."""

    separator = b","  # data objects joined by a bare comma: a block is then a JSON array's content

    def __init__(self) -> None:
        self.visitors: set[str] = set()
        self.total = 0

    def add(self, row: bytes, leading_field: bytes | None = None, leading_value: int = 0) -> None:
        self.add_block(row, 1)

    def add_block(self, block: bytes, count: int) -> None:
        self.total += count
        self.visitors.update(
            v.visitorId for v in _VISITORS.decode(b"[" + block + b"]") if isinstance(v.visitorId, str)
        )

    def flush(self) -> None:
        return None


class _Visitor(msgspec.Struct):
    visitorId: Any = None


_VISITORS = msgspec.json.Decoder(list[_Visitor])
