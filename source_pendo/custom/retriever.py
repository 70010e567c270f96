"""Reads a custom aggregation stream (spec option `custom_aggregations`; custom/bodies.py builds the bodies).

Activity sources: the stream is built like the built-in activity streams (activity/streams.py: the per-app
window cursor with its checkpoints, lookback and state; the RecordBatch path to stdout); only the window's
reading differs: one request per period (a day under DAY, an hour under HOUR) whose start lies in the window,
the source's `timeSeries` asking that one bucket (`first` = `last`), every row gets `periodStart` (the period's
start, UTC-aligned), the stream's cursor.

Why one period per request, not the rollups' keyset over (bucket, visitorId): the user's stages decide the
output rows, which need not carry a bucket or a visitor, so there is nothing to key a multi-period answer on;
and whether Pendo runs the stages once over all periods of a `timeSeries` or once per period is not settled
(BEHAVIOR.md §R-1): a `group` or `reduce` over a multi-period answer would give different rows under the two
readings. Over one period both readings give the same rows. Paging inside a period (§B-17 has no cursor): a
primary key of one field (besides periodStart) is a keyset after the user's stages (`sort`, `k > last`,
`limit`); without one, an answer of `limit` rows may be truncated and stops the sync with a config error
(raise page_size, or declare a one-field primary key). A keyed stream also reads on after a short page that may
be a server's cap (answers.py); an unkeyed one cannot, so a server capping answers below `limit` truncates
its periods (README Limits).

Other sources (visitors, accounts, the catalogue, guidesSeen, pollsSeen...): full refresh, the same paging.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from airbyte_cdk.models import AirbyteStreamStatus, FailureType, StreamDescriptor
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..activity.answers import WindowAnswers
from ..activity.pages import BODY_ERRORS, PageState, RecordSink, WindowRun, body_chunks, broke_from
from ..activity.record_batch import RecordBatch, RecordBatchBuilder
from ..activity.retriever import ActivityRetriever
from ..activity.windows import iso_minute
from ..pendo import PERIOD_MS
from ..settings.custom_aggregations import CustomAggregation, custom_aggregation
from .bodies import request_body

LOGGER = logging.getLogger("airbyte")


@dataclass
class CustomAggregationRetriever(ActivityRetriever):
    """The retriever of one custom aggregation stream, found in the config by the stream's name."""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self.entry: CustomAggregation = custom_aggregation(self.config, self.name)
        self._period_length = PERIOD_MS[self._period]

    # ------------------------------------------------------------------ full refresh (other sources)
    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        if self.entry.is_activity:
            yield from super().read_records(records_schema, stream_slice)
            return
        # Records travel as RecordBatch messages, which the CDK does not count as records: say RUNNING here, as
        # ActivityRetriever.read_records does for the activity streams.
        yield stream_status_message(StreamDescriptor(name=self.name), AirbyteStreamStatus.RUNNING)
        builder = RecordBatchBuilder(self.name)
        run = WindowRun("*", 0, 0, builder, WindowAnswers())
        yield from self._read_pages(run, None)
        batch = builder.flush()
        if batch is not None:
            yield batch
        LOGGER.info(f"{self.name}: {builder.total} records in {run.pages} request(s)")

    # ------------------------------------------------------------------ one window (activity sources)
    def _read_window(
        self,
        app: str,
        start: int,
        end: int,
        builder: RecordSink,
        answers: WindowAnswers,
        object_id: str | None = None,
    ) -> Generator[RecordBatch, None, int]:
        """Each period whose start lies in [start, end), one after the other (windows may start mid-period when
        start_date has a time: the period holding it started before start_date and is not read). Custom streams
        have no per-object lanes (a new tag's history is read for feature_events and page_events only)."""
        if object_id is not None:
            raise AssertionError(f"{self.name}: a custom aggregation stream has no per-object windows")
        run = WindowRun(app, start, end, builder, answers)
        length = self._period_length
        bucket = -(-start // length) * length
        while bucket < end:
            yield from self._read_pages(run, bucket)
            bucket += length
        return run.pages

    def _read_pages(self, run: WindowRun, bucket: int | None) -> Generator[RecordBatch, None, None]:
        """Every page of one period (or of a full-refresh stream): keyset on the one-field key, else one page."""
        key = self.entry.keyset_field
        after: Any = None
        while True:
            body = request_body(self.entry, self.config, self.pager.page_size, run.app, bucket, after)
            response = self.pager.send(body, run)
            if response is None:
                return
            try:
                text = b"".join(body_chunks(response))
            except BODY_ERRORS as error:
                self.pager.broke(run, PageState(None, set(), self.rows.group_pks, 0), broke_from(error))
                continue  # nothing was emitted from this page: ask again
            finally:
                response.close()
            rows = self._rows(text, run, bucket)
            for row in rows:
                batch = (
                    run.builder.add(orjson.dumps(row), self.rows.time_bytes, bucket)
                    if bucket is not None
                    else run.builder.add(orjson.dumps(row))
                )
                if batch is not None:
                    yield batch
            run.answers.note(len(rows))
            # short: the last page, unless it is keyed and may be a capped one (answers.py, BEHAVIOR.md §B-17)
            if len(rows) < self.pager.page_size and (key is None or not run.answers.may_be_capped(len(rows))):
                return
            if key is None:
                raise AirbyteTracedException(
                    message=f"{self.name}: Pendo answered {len(rows)} rows, the page_size limit, {self._where(run, bucket)}, so the answer may be truncated, and a pipeline without a one-field primary_key cannot be paged. Raise page_size (up to 500000), aggregate further, or declare a primary_key of one field that is unique in the pipeline's output. Progress is saved up to the last complete window.",
                    failure_type=FailureType.config_error,
                )
            last = rows[-1].get(key) if isinstance(rows[-1], dict) else None
            if last is None:
                raise AirbyteTracedException(
                    message=f"{self.name}: a row of the pipeline's output has no `{key}` (its primary_key), {self._where(run, bucket)}: pages cannot be keyed on it. Make the pipeline output `{key}` on every row, or change primary_key.",
                    failure_type=FailureType.config_error,
                )
            if after is not None and not _after(last, after):
                raise AirbyteTracedException(
                    message=f"{self.name}: Pendo answered the next page {self._where(run, bucket)} with rows not after the last one read ({key} > {after!r}): the keyset is not kept, paging would not end. The sync stopped; progress is saved up to the last complete window.",
                    failure_type=FailureType.system_error,
                )
            after = last

    def _rows(self, text: bytes, run: WindowRun, bucket: int | None) -> list[dict[str, Any]]:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        results = parsed.get("results", None) if isinstance(parsed, dict) else None
        if isinstance(parsed, dict) and results is None:
            results = []  # `results: null`: no rows (BEHAVIOR.md §B-9)
        if not isinstance(results, list) or not all(isinstance(row, dict) for row in results):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo's answer {self._where(run, bucket)} is not an aggregation result (an object with a list of rows under `results`).",
                internal_message=text[:200].decode(errors="replace"),
                failure_type=FailureType.system_error,
            )
        return results

    def _where(self, run: WindowRun, bucket: int | None) -> str:
        if bucket is None:
            return "to the full-refresh request"
        return f"for app {run.app}, period {iso_minute(bucket)}"


def _after(value: Any, after: Any) -> bool:
    try:
        return bool(value > after)
    except TypeError:
        return True  # values of another kind: Pendo's cross-kind order is not documented
