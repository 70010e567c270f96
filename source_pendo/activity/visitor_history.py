"""visitor_history: `GET /visitor/{id}/history?starttime=` for the visitors active in each 24-hour window.

Why Python: the history endpoint answers one visitor and one 24-hour window per call and keeps 180 days
(PENDO_API.md §4.10), so the calls must be bounded by who was actually active. Per window this retriever
asks the `events` rollup (hourRange, keyset on visitorId) which visitors had activity in it, then fetches
the history of each of those visitors only: visitors with no activity since the cursor cost no call.
Items carry no visitor id on the wire; the record gets `visitorId`. Windows come from the activity cursor
(one day each, starting no earlier than 179 days ago), so state is checkpointed after every day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass
from typing import Any
from urllib.parse import quote

from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.retrievers.retriever import Retriever
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import Config, StreamSlice

from ..components.skip_not_found import skipped
from ..pendo import ANONYMOUS_PREFIX, EVERY_APP, PERIOD_RANGE, aggregation_body, literal
from .cursor import WindowFeedback, iso_minute

LOGGER = logging.getLogger("airbyte")


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
        self._page_size = int(self.config.get("page_size") or 50_000)
        self._anonymous = bool(self.config.get("include_anonymous_visitors", False))

    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        assert stream_slice is not None
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        count = 0
        try:
            visitors = self._active_visitors(start, end)
            for visitor in visitors:
                history_slice = StreamSlice(
                    partition={"visitor_id": quote(visitor, safe="")}, cursor_slice={"start": str(start)}
                )
                response = self.history_requester.send_request(stream_slice=history_slice)
                if response is None or skipped(response):  # a 404 SkipNotFound let through, with its warning
                    continue
                for item in response.json() or []:
                    ts = item.get("ts")
                    if isinstance(ts, int) and start <= ts < end:
                        count += 1
                        yield dict(item, visitorId=visitor)
            LOGGER.info(
                f"{self.name}: {iso_minute(start)} to {iso_minute(end)}: {count} records from {len(visitors)} active visitor(s)"
            )
            if self.cursor is not None:
                self.cursor.observe_window(stream_slice, count)
        finally:
            if self.cursor is not None:
                self.cursor.release_window()

    def _active_visitors(self, start: int, end: int) -> list[str]:
        """Distinct visitors with `events` rows in [start, end), paged on visitorId."""
        visitors: list[str] = []
        last: str | None = None
        while True:
            condition = f"hour >= {start} && hour < {end}"
            if last is not None:
                condition += f" && visitorId > {literal(last)}"
            pipeline: list[dict[str, Any]] = [
                {
                    "source": {
                        "events": {"appId": EVERY_APP},
                        "timeSeries": {"period": PERIOD_RANGE["HOUR"], "first": start, "last": end - 1},
                    }
                },
            ]
            if not self._anonymous:
                pipeline.append({"identified": "visitorId"})
            pipeline += [{"filter": condition}, {"sort": ["visitorId"]}, {"limit": self._page_size}]
            body = aggregation_body(self.name, pipeline)
            response = self.requester.send_request(
                request_body_json=body, stream_slice=StreamSlice(partition={}, cursor_slice={})
            )
            rows = (response.json() or {}).get("results", []) if response is not None else []
            for row in rows:
                visitor = row.get("visitorId")
                if not isinstance(visitor, str) or (visitors and visitors[-1] == visitor):
                    continue
                if not self._anonymous and visitor.startswith(ANONYMOUS_PREFIX):
                    continue
                visitors.append(visitor)
            if len(rows) < self._page_size:
                return visitors
            last = rows[-1].get("visitorId")
