"""The record path of an activity window: a block of whole rows becomes RECORD data, most often in one piece.

A block is the text of the complete rows of a network chunk (rows.py) and a small decoded head per row (time,
visitor, text key fields). `RowFormat.read_block` turns it into data objects with a few byte operations over the
whole block (`block_as_records`: `periodStart` spliced after the bucket field, compact or spaced separators,
BEHAVIOR.md §R-12), and only a block that needs a decision per row (rows outside the window, anonymous visitors,
the keyset's group, nested objects, a key field absent from some rows only, a client-side filter) goes row by
row, which gives the same records. Times Pendo writes as an integral float or a numeric string are that time
(`as_time`, §B-18); any other time stops the sync naming the stream, the field and the window (`checked_time`).
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec
import orjson
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..pendo import ANONYMOUS_PREFIX, ANONYMOUS_PREFIX_BYTES, literal
from .pages import PageState, WindowRun
from .record_batch import RecordBatch
from .windows import iso_minute

PERIOD_FIELD = {"DAY": "day", "HOUR": "hour"}


def row_time_field(time_field: str, period: str) -> str:
    """The rows' time field: `day`/`hour` for a rollup (`time_field` "bucket"), else the raw event's own."""
    return PERIOD_FIELD[period] if time_field == "bucket" else time_field


NUMERIC_KEY_FIELDS = {"appId", "periodStart", "browserTime", "day", "hour", "ts"}


class RowKey(msgspec.Struct):
    """The fields of a row the record path needs: time, keyset, primary key. Others stay raw."""

    day: Any = None
    hour: Any = None
    browserTime: Any = None
    visitorId: Any = None
    accountId: Any = None
    appId: Any = None
    server: Any = None
    remoteIp: Any = None
    userAgent: Any = None
    featureId: Any = None
    pageId: Any = None
    trackTypeId: Any = None
    guideId: Any = None
    guideStepId: Any = None
    pollId: Any = None
    type: Any = None


_ROW_KEYS = msgspec.json.Decoder(list[RowKey])
_RAW_ROWS = msgspec.json.Decoder(list[msgspec.Raw])
_VISITOR_OF = operator.attrgetter("visitorId")
_HEAD_JSON = msgspec.json.Encoder()
MAX_BUCKETS_PER_BLOCK = 32


_NO_BOUND_LOW, _NO_BOUND_HIGH = -(2**62), 2**62  # raw events: the time series alone selects them (§R-4)
NO_TIME = (
    _NO_BOUND_LOW + 1
)  # a raw event without a time of its own (§R-20): inside the bounds, before every time


class RowFormat:
    """How one activity stream's rows become records: its time field, primary key, anonymous-visitor setting and
    client-side filter (the `filters` conditions Pendo is not sent)."""

    def __init__(
        self,
        name: str,
        time_field: str,
        period: str,
        primary_key: Any,
        anonymous: bool,
        keep_row: Callable[[Mapping[str, Any]], bool] | None,
    ) -> None:
        self.name = name
        self.is_rollup = time_field == "bucket"
        self.time = row_time_field(time_field, period)
        self.time_bytes = orjson.dumps("periodStart") if self.is_rollup else None
        self._time_key = orjson.dumps(self.time) + b":"
        self._time_of = operator.attrgetter(self.time)
        self._anonymous = anonymous
        self._keep_row = keep_row
        self._pk_fields = [f for f in (primary_key or []) if f != "periodStart"]
        self._time_pk_index = self._pk_fields.index(self.time) if self.time in self._pk_fields else None
        # Text key fields are never null in a record: an absent or null one is written "" (see _text_keys).
        self._text_keys = [f for f in self._pk_fields if f not in NUMERIC_KEY_FIELDS]
        self._text_key_getters = [
            (f, operator.attrgetter(f), orjson.dumps(f) + b":") for f in self._text_keys if f != "visitorId"
        ]
        # What the record path decodes of every row: time, visitor, app and text key fields, i.e. the primary key
        # (its digest tells rows apart: `digests`). The rest stays bytes.
        head_fields = [self.time, "visitorId", "appId"] + [f for f, _, _ in self._text_key_getters]
        self.head_type = msgspec.defstruct("RowHead", [(f, Any, None) for f in head_fields], frozen=True)

    def digests(self, text: bytes, heads: list[Any]) -> list[int]:
        """A digest of each row, to tell rows apart within a window. A rollup row is its primary key (its head:
        Pendo's rollup key, unique by construction, §B-15); a raw guide/poll event is its whole content, keys in
        any order (two events may share the stream's primary key: a double-fired event is still two rows
        Pendo counts)."""
        if not self.is_rollup:
            return [
                hash(orjson.dumps(orjson.loads(bytes(raw)), option=orjson.OPT_SORT_KEYS))
                for raw in _RAW_ROWS.decode(b"[" + text + b"]")
            ]
        try:
            return list(map(hash, heads))  # one C loop: a frozen struct hashes its fields
        except TypeError:  # a key field holding a list or an object (a broken answer): hashed as JSON
            return [hash(_HEAD_JSON.encode(head)) for head in heads]

    def read_block(
        self,
        text: bytes,
        heads: list[Any],
        page: PageState,
        run: WindowRun,
    ) -> Iterator[RecordBatch]:
        """One block of rows (the text of the complete rows of a network chunk, and their time and visitor)."""
        builder = run.builder
        start, end = (run.start, run.end) if self.is_rollup else (_NO_BOUND_LOW, _NO_BOUND_HIGH)
        count = len(heads)
        page.rows += count
        times = list(map(self._time_of, heads))
        exact_times = set(map(type, times)) == _INT_ONLY  # one C loop per block, no Python step per row
        if not exact_times:  # 1.0e12 or "1000..." is that time; anything else stops the sync (§B-18)
            times = [self._checked_time(t, run) for t in times]
        if self.is_rollup:  # a row no reading places near the window is never dropped silently (§B-18)
            check_within_reach(
                min(times), max(times), run.start, run.end, self.name, self.time, f"app {run.app}"
            )
        visitors = list(map(_VISITOR_OF, heads))
        if page.after is not None or page.keyset is not None:
            first = next((i for i, t in enumerate(times) if t != NO_TIME), None)  # a row with its own time
            if first is not None:
                self._check_keyset_kept(times[first], visitors[first], page, run)
        if page.limit:
            page.observe(text, times, visitors)
        rows = run.rows
        digests = self.digests(text, heads) if rows is not None else None
        absent = self._absent_text_keys(text, heads, visitors, count)
        new_rows = digests is None or (rows is not None and rows.all_new(digests, page.copies))
        block = (
            None
            if absent is None or not exact_times or self._keep_row is not None or not new_rows
            else self.block_as_records(
                text, times, visitors, count, page, start, end, builder.separator, absent
            )
        )
        if block is not None:
            page.note(text, (times[-1], visitors[-1]), count)
            if rows is not None and digests is not None:
                rows.take_all(digests, page.copies)
                if self.is_rollup:
                    run.buckets.update(times)
            else:
                run.rows_read += count
            batch = builder.add_block(block, count)
            if batch is not None:
                yield batch
            return
        # Row by row: rows outside the window, rows read before, anonymous rows, the keyset group, rows that are
        # not flat, times written as a float or a string (the record gets the integer).
        whole = b"[" + text + b"]"
        last_group, emitted = None, 0
        digest_of: Iterable[int | None] = digests if digests is not None else itertools.repeat(None, count)
        for raw, key, t, digest in zip(
            _RAW_ROWS.decode(whole), _ROW_KEYS.decode(whole), times, digest_of, strict=True
        ):
            if t < start or t >= end:
                continue
            visitor = key.visitorId
            group = (t, visitor)
            write = True
            if rows is not None and digest is not None:
                new, write = rows.take(digest, page.copies)
                if not new:  # an earlier answer of this read held it (a keyset group, a page asked again)
                    continue
                if write and self.is_rollup:
                    run.buckets[t] += 1
            elif group == page.keyset and self.pk(key) in page.seen:
                continue
            else:
                run.rows_read += 1
            if not self._anonymous and isinstance(visitor, str) and visitor.startswith(ANONYMOUS_PREFIX):
                continue
            last_group = group
            emitted += 1  # read, for paging, whether or not a client-side filter keeps it
            if not write:
                continue
            row = bytes(raw)
            if self._keep_row is not None and not self._keep_row(
                {**orjson.loads(row), self.time: None if t == NO_TIME else t}
            ):
                continue
            if any(getattr(key, f) is None for f in self._text_keys):
                row = _with_empty_keys(row, self._text_keys)
            if not exact_times and type(getattr(key, self.time)) is not int and t != NO_TIME:
                row = _with_field(row, self.time, t)
            batch = builder.add(row, self.time_bytes, t) if self.is_rollup else builder.add(row)
            if batch is not None:
                yield batch
        if last_group is not None:
            page.note(text, last_group, emitted)

    def _absent_text_keys(
        self, text: bytes, heads: list[Any], visitors: list[Any], count: int
    ) -> bytes | None:
        """`"f":"",` for each text key field absent from every row of the block (e.g. `remoteIp` when the
        subscription does not log addresses); None when some rows have the field and others do not, or
        have it null (row by row).

        Why "": a key field must not be null. Destinations that merge on key equality (SQL `NULL = NULL` is
        not true; PyAirbyte's DuckDB cache) would keep a re-read row twice.
        """
        if None in visitors:
            return None
        absent = b""
        for _, getter, marker in self._text_key_getters:
            values = list(map(getter, heads))
            if None in values:
                if values.count(None) != count or marker in text:
                    return None
                absent += marker + b'"",'
        return absent

    def block_as_records(
        self,
        text: bytes,
        times: list[Any],
        visitors: list[Any],
        count: int,
        page: PageState,
        start: int,
        end: int,
        separator: bytes,
        absent: bytes = b"",
    ) -> bytes | None:
        """The block's rows as data objects joined by `separator`, when every row is emitted as it is (plus
        `periodStart` after the bucket field); None when some row needs the row-by-row path.

        Byte operations on the whole block instead of a Python step per row: the block is valid JSON (the
        reader decoded it), so an unescaped `"hour":` is a key, and counts prove every row has exactly one.
        """
        try:
            if min(times) < start or max(times) >= end:
                return None
        except TypeError:  # a row without a time, or not a number
            return None
        buckets = set(times)
        if len(buckets) > MAX_BUCKETS_PER_BLOCK or any(type(t) is not int for t in buckets):
            return None
        if (
            not self._anonymous
            and (ANONYMOUS_PREFIX_BYTES in text or b"\\u" in text)
            and any(isinstance(v, str) and v.startswith(ANONYMOUS_PREFIX) for v in visitors)
        ):
            return None
        if page.keyset is not None and page.keyset[0] in buckets:
            bucket, visitor = page.keyset
            if any(t == bucket and v == visitor for t, v in zip(times, visitors, strict=True)):
                return None
        # Flat rows (one `}` each) between compact (`},{`) or spaced (`}, {`, §R-12) separators: detected
        # once per block, never per row.
        between = b"},{"
        flat = text.count(b"}") == count
        if flat and text.count(between) != count - 1:
            between = b"}, {"
            flat = text.count(between) == count - 1
        if flat and self.is_rollup and len(buckets) == 1:  # the common case: one bucket, `periodStart` first
            leading = b"{%s:%d," % (self.time_bytes, times[0]) + absent
            return leading + text[1:].replace(between, b"}" + separator + leading)
        if flat:
            leading = b"{" + absent
            block = leading + text[1:].replace(between, b"}" + separator + leading)
        elif absent:
            return None
        else:
            block = separator.join(_RAW_ROWS.decode(b"[" + text + b"]"))
        if not self.is_rollup:
            return block
        key = (
            self._time_key + b" "
        )  # `"hour": T` (spaced) or `"hour":T`: the compact key is a prefix of the spaced one
        if key not in text:
            key = self._time_key
        patterns = [
            (b"%s%d%s" % (key, t, end_), b'%s%d,"periodStart":%d%s' % (key, t, t, end_))
            for t in buckets
            for end_ in (b",", b"}")
        ]
        if sum(text.count(old) for old, _ in patterns) != count:
            return None  # a nested object also has the bucket key: row by row
        for old, new in patterns:
            block = block.replace(old, new)
        return block

    def _check_keyset_kept(self, t: int, visitor: Any, page: PageState, run: WindowRun) -> None:
        """A follow-up page must start after what was read (`t > after`) or in the keyset's bucket from its
        visitor on (`t == B && visitorId >= V`); a block of it that starts before is a server ignoring the
        keyset, whose pages would repeat rows for ever: the sync stops, naming the stream (BEHAVIOR.md §B-17).
        Once per block (its first row: the rows are sorted)."""
        if page.after is not None:
            ignored = t <= page.after
            asked = f"{self.time} > {page.after}"
        else:
            assert page.keyset is not None
            bucket, from_visitor = page.keyset
            ignored = t != bucket or (type(visitor) is type(from_visitor) and visitor < from_visitor)
            asked = f"{self.time} == {bucket} && visitorId >= {literal(from_visitor)}"
        if ignored:
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo answered the next page of app {run.app}, window {iso_minute(run.start)} to {iso_minute(run.end)} with rows before the ones asked for ({asked}): the server ignores the keyset filter, so paging would repeat the same rows for ever. The sync stopped; progress is saved up to the last complete window.",
                internal_message=f"{self.name}: first row ({t}, {visitor!r}) for {asked}",
                failure_type=FailureType.system_error,
            )

    def _checked_time(self, value: Any, run: WindowRun) -> int:
        """A row's time (§B-18). A raw guide/poll event without one (no integer `browserTime`, BEHAVIOR.md
        §R-20) is emitted as Pendo sent it: its time is NO_TIME, before every other (Pendo's sort puts a missing
        value first), which the pager's keyset never asks for (the count check reads such rows, §B-22). A rollup
        row without its bucket stops the sync."""
        if not self.is_rollup:
            t = as_time(value)
            return NO_TIME if t is None else t
        where = f"app {run.app}, window {iso_minute(run.start)} to {iso_minute(run.end)}"
        return checked_time(value, self.name, self.time, "a row", where)

    def pk(self, key: RowKey) -> tuple[Any, ...]:
        pk = tuple(getattr(key, f, None) for f in self._pk_fields)
        if self._time_pk_index is not None and type(pk[self._time_pk_index]) is not int:
            i = self._time_pk_index
            pk = (*pk[:i], as_time(pk[i]), *pk[i + 1 :])
        return pk

    def group_pks(self, text: bytes, group: tuple[Any, Any]) -> set[tuple[Any, ...]]:
        """Primary keys of the rows of `group` in a block (for the next page's keyset skip)."""
        return {
            self.pk(key)
            for key in _ROW_KEYS.decode(b"[" + text + b"]")
            if (self._time_or_none(getattr(key, self.time)), key.visitorId) == group
        }

    def _time_or_none(self, value: Any) -> int | None:
        t = as_time(value)
        return NO_TIME if t is None and not self.is_rollup else t

    # ------------------------------------------------------------------ request


_INT_ONLY = {int}
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")


def as_time(value: Any) -> int | None:
    """A time in milliseconds as Pendo may write it (§B-18): an int, an integral float (1795651200000.0) or a
    numeric string ("1795651200000"); None for anything else (absent, null, text, 1.5, a bool, an object)."""
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is float:
        return int(value) if value.is_integer() else None
    if kind is str and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    return None


def checked_time(value: Any, stream: str, field: str, what: str, where: str) -> int:
    """`as_time(value)`, or the sync fails naming the stream, the field and the window: a row (or history
    item) whose time is unknown is never taken as outside the window and dropped with exit 0."""
    t = as_time(value)
    if t is None:
        shown = "missing (or null)" if value is None else repr(value)[:60]
        raise AirbyteTracedException(
            message=f"{stream}: Pendo sent {what} whose `{field}` is {shown}, not a time in milliseconds ({where}). "
            "The sync stopped rather than drop it; progress is saved up to the last complete window.",
            internal_message=f"{stream}: {field}={value!r}",
            failure_type=FailureType.system_error,
        )
    return t


DAY_MS = 86_400_000
# How far outside its window a row's time may be and still be another window's row, dropped here and read there: a
# DAY bucket starts at the subscription's local midnight, up to a day and 14 hours before the UTC window it
# overlaps (§B-18); a visitor history answer holds the day from `starttime`. Two days covers both.
WINDOW_REACH_MS = 2 * DAY_MS


def check_within_reach(
    low: int, high: int, start: int, end: int, stream: str, field: str, where: str
) -> None:
    """Rows whose time is outside [start, end) are another window's and are dropped; a time no reading places
    that near the window (seconds or microseconds for milliseconds, negative, year 9999, 1e23) is no window's: the
    sync stops naming the stream, the window and the value, so the state is never saved past rows it dropped."""
    if start - WINDOW_REACH_MS <= low and high < end + WINDOW_REACH_MS:
        return
    value = low if low < start - WINDOW_REACH_MS else high
    window = f"{where}, window {iso_minute(start)} to {iso_minute(end)}"
    hint = ""
    if start - WINDOW_REACH_MS <= value * 1000 < end + WINDOW_REACH_MS:
        hint = " It looks like a time in seconds: the server answers times in seconds, not milliseconds."
    elif start - WINDOW_REACH_MS <= value // 1000 < end + WINDOW_REACH_MS:
        hint = " It looks like a time in microseconds: the server answers times in microseconds, not milliseconds."
    raise AirbyteTracedException(
        message=f"{stream}: Pendo sent a row whose `{field}` is {value}, far outside the window it was asked for "
        f"({window}); no reading of Pendo's answer places a row there.{hint} The sync stopped rather than drop "
        "it; progress is saved up to the last complete window.",
        internal_message=f"{stream}: {field} range [{low}, {high}] for [{start}, {end})",
        failure_type=FailureType.system_error,
    )


def _with_field(row: bytes, name: str, value: Any) -> bytes:
    """The row with `name` set to `value` (row-by-row path only; the field keeps its place)."""
    obj = orjson.loads(row)
    obj[name] = value
    return orjson.dumps(obj)


def _with_empty_keys(row: bytes, fields: list[str]) -> bytes:
    """The row with each of `fields` that is absent or null set to "" (row-by-row path only)."""
    obj = orjson.loads(row)
    for name in fields:
        if obj.get(name) is None:
            obj[name] = ""
    return orjson.dumps(obj)
