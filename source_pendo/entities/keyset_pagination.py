"""Keyset pagination over Pendo's aggregation API: `filter id > "<last id>"`, `sort [id]`, `limit N`.

Why the manifest cannot say it with `CursorPagination`:
- The CDK gives a paginator the page size and the last record *after* the record filter. Visitors drop
  anonymous rows client-side, so a full page would look short and the read would stop early, silently.
- `cursor_value` is rendered by Jinja and then passed through `ast.literal_eval`: the id "42" comes back as
  the int 42 and "1_000" as 1000, so the next filter would compare against the wrong key.
This strategy reads the raw page instead: its row count before filtering (which the CDK's RecordSelector
records on the response) decides whether to go on, and the id of its last row is the next key. The filter
itself, with the id escaped, is written in the manifest's request body.

A server that caps answers below `limit` (BEHAVIOR.md §B-17) makes every page short, so "short = last" would
lose rows with exit 0. A cap is at least every answer size seen, so a short page smaller than an earlier answer
of the stream is the last one; a short, non-empty page at least as long as every earlier one may be a capped
page: the next key is asked for once more (a probe; on a normal server it answers no rows, one extra request
per stream in most syncs). When the probe brings rows, the server caps at that page's size: paging goes on with
pages of that size taken as full, and one WARNING names the cap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import msgspec
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.extractors.record_selector import extracted_record_count
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.types import Config, Record, StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .estimates import COUNTS


class _Page(msgspec.Struct):
    """The aggregation envelope with its rows left undecoded: only the last one is needed."""

    results: list[msgspec.Raw] = []


LOGGER = logging.getLogger("airbyte")
_PAGE_DECODER = msgspec.json.Decoder(_Page)
_ROW_DECODER = msgspec.json.Decoder(dict[str, Any])


@dataclass
class KeysetPagination(PaginationStrategy):
    """Next key = the last row's `id_field`; stop on a page shorter than `page_size`. Keys start at ""."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    id_field: str
    page_size: int | str

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        size = InterpolatedString.create(str(self.page_size), parameters=parameters).eval(self.config)
        self._page_size = int(size)
        self._name = str((parameters or {}).get("name") or self.id_field)
        self._lock = threading.Lock()
        self._largest = 0  # the longest answer seen: a server cap is at least this
        self._cap: int | None = None  # a cap below page_size, once a probe proved it
        self._probes: dict[str, int] = {}  # probe key -> the size of the short page it follows
        self._rows = 0  # rows of every page, before the record filter (anonymous visitors included)

    @property
    def initial_token(self) -> str:
        return ""

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Record | None,
        last_page_token_value: Any | None = None,
        page_size_override: int | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> str | None:
        count = extracted_record_count(response, default=last_page_size)
        with self._lock:
            self._rows += count
        if not self._continues(count, last_page_token_value):
            self._check_count()
            return None
        rows = _PAGE_DECODER.decode(response.content).results
        last_key = _ROW_DECODER.decode(rows[-1]).get(self.id_field) if rows else None
        if last_key is None or str(last_key) == last_page_token_value:
            raise AirbyteTracedException(
                message=f"Pendo's aggregation API did not advance past {self.id_field} "
                f"'{last_page_token_value}'; stopping instead of reading the same page again.",
                internal_message=f"Keyset on {self.id_field}: last row key {last_key!r} after {last_page_token_value!r}",
                failure_type=FailureType.system_error,
            )
        if count < self._page_size and (self._cap is None or count < self._cap):
            with self._lock:  # a short page taken for a possibly capped one: the next request is a probe
                self._probes[str(last_key)] = count
        return str(last_key)

    def _continues(self, rows: int, token: Any) -> bool:
        """Whether a page of `rows` rows may have more after it (see the module doc: full, capped or suspect)."""
        with self._lock:
            largest, self._largest = self._largest, max(self._largest, rows)
            probed = self._probes.pop(str(token), None) if token is not None else None
            if probed is not None and rows > 0 and self._cap is None:
                self._cap = probed
                LOGGER.warning(
                    f"{self._name}: Pendo answered {probed} rows to a request limited to {self._page_size} "
                    f"although more rows followed: the server caps answers at {probed} rows. Paging on with "
                    f"pages of {probed} rows taken as full (more requests, no rows lost)."
                )
            cap = self._cap
        if rows >= self._page_size or (cap is not None and rows >= cap):
            return True
        return cap is None and rows > 0 and rows >= largest

    def _check_count(self) -> None:
        """The last page was read: a full read holds every row Pendo counted before it (estimates.COUNTS,
        BEHAVIOR.md §B-22). Fewer stops the stream (no state is saved past it); more is rows that arrived."""
        expected = COUNTS.expected(self._name)
        if expected is None:
            return
        if self._rows < expected:
            message = (
                f"{self._name}: Pendo counted {expected} rows before the read, but its pages held {self._rows}. "
                "The sync stopped rather than save progress past rows it could not read. Retry the sync; if it "
                "fails again, report it with the sync logs (Pendo may answer in a way this connector version does "
                "not read right)."
            )
            raise AirbyteTracedException(
                message=message, internal_message=message, failure_type=FailureType.system_error
            )
        if self._rows > expected:
            LOGGER.debug(f"{self._name}: {self._rows} rows read, {expected} counted (rows arrived meanwhile)")

    def get_page_size(self) -> int:
        return self._page_size
