"""The invariant every sync must keep under faults ("never lose a record"), written once.

Given the ground truth of each stream and the successive syncs of one scenario (a sync killed or failed, then
the syncs that resume from the state it left), `assert_never_lost` checks:

1. **Loud failure.** A sync that exits non-zero printed an ERROR trace (a `kill -9` excepted: a killed process
   prints nothing); a sync that exits 0 printed none, and every ground-truth record has been emitted by it or
   by the syncs before it: missing data never comes with exit 0.
2. **Nothing invented, nothing half-emitted.** Every record emitted is a ground-truth record, field for field.
3. **No duplicates beyond the lookback.** No sync emits a record more often than the ground truth has it; a
   record an earlier sync already emitted comes again only if it is inside the lookback window of the state the
   sync started from (cursor >= frontier - lookback, aligned down to the hour as the cursor aligns it).
4. **State never runs ahead of records.** When a STATE message says an app's frontier is F, every ground-truth
   record of that app (all apps for `*`) whose cursor is before F was emitted before that STATE message, by
   this sync or an earlier one. Checked for the per-app window state of the activity streams
   (source_pendo/activity/cursor.py); other streams are read whole on every sync.
   A new tag's history (source_pendo/activity/backfill.py) is the one exception the state declares: an object
   listed under the app's `backfill.objects` with position P has its records from P (aligned down to the hour)
   still to come; they may also come again in the sync that resumes it (rule 3). Such an object's history ends
   where the forward windows begin (F - lookback): its records from there to F come with the forward windows, and
   a resumed sync re-reads them, so for it the STATE promises the records before F - lookback.

`Ledger.seed` takes syncs that ran before the catalogue changed (a new tag makes history appear that those syncs
could not see): their records count as emitted, unchecked.

Records are compared by a fingerprint of their canonical JSON (nulls dropped, as `comparison.canonical` does),
so the same helper checks a few hundred records or a million (the load test feeds it a message stream).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from integration_tests.comparison import without_nulls
from integration_tests.pendo_emulator.truth import record_key

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
KILLED = -9  # returncode of a process ended by SIGKILL

# The object a row of a backfilled stream belongs to (source_pendo/activity/backfill.py).
OBJECT_FIELDS = {"feature_events": "featureId", "page_events": "pageId"}
# The cursor each activity stream's state is kept on (manifest.yaml `incremental_sync.cursor_field`).
CURSOR_FIELDS = {
    "events": "periodStart",
    "feature_events": "periodStart",
    "page_events": "periodStart",
    "track_events": "periodStart",
    "guide_events": "browserTime",
    "poll_events": "browserTime",
    "visitor_history": "ts",
}


class Sync(Protocol):
    """One connector run: `ConnectorRun` (conftest.py) or a streamed run of the load test."""

    returncode: int
    state_in: list[dict[str, Any]] | None

    def iter_messages(self) -> Iterable[dict[str, Any]]: ...


def fingerprint(record: Mapping[str, Any]) -> bytes:
    """16 bytes identifying a record's content, null fields and key order aside."""
    return hashlib.blake2b(
        orjson.dumps(without_nulls(record), option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


@dataclass
class _Stream:
    counts: Counter[bytes] = field(default_factory=Counter)  # ground truth, with multiplicity
    position: dict[bytes, tuple[Any, Any]] = field(default_factory=dict)  # fingerprint -> (app, cursor)
    objects: dict[bytes, Any] = field(default_factory=dict)  # fingerprint -> object id (backfilled streams)
    backfilled: set[Any] = field(default_factory=set)  # objects a state listed as being backfilled
    samples: dict[bytes, Mapping[str, Any]] = field(default_factory=dict)  # for messages, a few records only
    emitted: set[bytes] = field(default_factory=set)  # by every sync so far
    by_partition: dict[str, list[tuple[Any, bytes]]] = field(default_factory=dict)  # sorted by cursor
    verified: dict[str, int] = field(default_factory=dict)  # prefix of by_partition known emitted


# Streams whose lookback is not `lookback_window_days` by default (the connector's defaults: config.py DEFAULTS)
STREAM_LOOKBACK_DAYS = {"track_events": 7}  # track_events_lookback_window_days


class Ledger:
    """Feeds on the syncs of one scenario in order and fails at the first broken rule."""

    def __init__(
        self,
        expected: Mapping[str, Iterable[Mapping[str, Any]]],
        lookback_days: int,
        positions: Mapping[str, str] | None = None,
    ) -> None:
        """`positions`: per stream, the field that places a record against a frontier when it is not the
        cursor field (guide/poll events under `receive_time_buckets`: `receivedTime`, what the windows select by)."""
        self.lookback_ms = lookback_days * DAY_MS
        # a stream with a lookback of its own (the connector's default: track_events, 7 days), else `lookback_days`
        self.stream_lookback_ms = {name: days * DAY_MS for name, days in STREAM_LOOKBACK_DAYS.items()}
        self.streams: dict[str, _Stream] = {}
        for name, records in expected.items():
            stream = self.streams[name] = _Stream()
            cursor = (positions or {}).get(name) or CURSOR_FIELDS.get(name)
            for record in records:
                fp = fingerprint(record)
                stream.counts[fp] += 1
                stream.position[fp] = (record.get("appId"), record.get(cursor) if cursor else None)
                if name in OBJECT_FIELDS:
                    stream.objects[fp] = record.get(OBJECT_FIELDS[name])
                if len(stream.samples) < 5_000:
                    stream.samples[fp] = record
        self.syncs = 0
        self.last_returncode: int | None = None

    # ------------------------------------------------------------------ one sync
    def seed(self, sync: Sync) -> None:
        """A sync that ran before the catalogue changed: its records count as emitted, unchecked."""
        for message in sync.iter_messages():
            if message.get("type") == "RECORD":
                stream = self.streams.get(message["record"]["stream"])
                if stream is not None:
                    stream.emitted.add(fingerprint(message["record"]["data"]))

    def feed(self, sync: Sync) -> None:
        self.syncs += 1
        label = f"sync {self.syncs} (exit {sync.returncode})"
        resumed_from = _frontiers(sync.state_in or [])
        backfilling = _backfill_positions(sync.state_in or [])
        this_sync: dict[str, Counter[bytes]] = defaultdict(Counter)
        errors: list[str] = []
        for message in sync.iter_messages():
            kind = message.get("type")
            if kind == "RECORD":
                self._record(label, message["record"], this_sync, resumed_from, backfilling)
            elif kind == "STATE":
                self._state(label, message["state"])
            elif kind == "TRACE" and message["trace"].get("type") == "ERROR":
                errors.append(message["trace"]["error"].get("message", ""))
        if sync.returncode == 0:
            assert not errors, f"{label}: exit 0 with error traces: {errors[:3]}"
            for name, stream in self.streams.items():
                missing = [fp for fp in stream.counts if fp not in stream.emitted]
                assert not missing, (
                    f"{label}: exit 0 but {len(missing)} {name} records of the ground truth were never emitted, e.g. "
                    f"{[self._describe(name, fp) for fp in missing[:3]]}"
                )
        elif sync.returncode != KILLED:
            assert errors, f"{label}: the sync failed without an ERROR trace saying why"
        self.last_returncode = sync.returncode

    def finish(self, complete: bool = True) -> None:
        """`complete`: the scenario ends with a sync that exited 0 (so the ground truth was emitted in full)."""
        if complete:
            assert self.last_returncode == 0, f"the last sync exited {self.last_returncode}, not 0"

    # ------------------------------------------------------------------ rules 2 and 3
    def _record(
        self,
        label: str,
        record: Mapping[str, Any],
        this_sync: dict[str, Counter[bytes]],
        resumed_from: Mapping[str, Mapping[str, int]],
        backfilling: Mapping[str, Mapping[str, Mapping[str, int]]],
    ) -> None:
        name, data = record["stream"], record["data"]
        stream = self.streams.get(name)
        assert stream is not None, f"{label}: a record of {name}, a stream this scenario did not select"
        fp = fingerprint(data)
        assert fp in stream.counts, (
            f"{label}: {name} emitted a record that is not in the ground truth: {_short(data)}"
        )
        this_sync[name][fp] += 1
        assert this_sync[name][fp] <= stream.counts[fp], (
            f"{label}: {name} emitted the same record twice in one sync: {_short(data)}"
        )
        if fp in stream.emitted and name in CURSOR_FIELDS:
            frontiers = resumed_from.get(name, {})
            app, cursor = stream.position[fp]
            frontier = frontiers.get(str(app), frontiers.get("*"))
            pending = backfilling.get(name, {})
            position = (pending.get(str(app)) or pending.get("*") or {}).get(stream.objects.get(fp))
            if position is not None and cursor >= position - position % HOUR_MS:
                pass  # a tag's history resumed from its saved position
            elif frontier is not None:
                lookback = self.stream_lookback_ms.get(name, self.lookback_ms)
                begin = frontier - lookback
                begin -= begin % HOUR_MS
                assert cursor >= begin, (
                    f"{label}: {name} re-emitted a record from before its lookback window (cursor {cursor}, resumed "
                    f"from frontier {frontier} with {lookback // DAY_MS} day(s) of lookback): {_short(data)}"
                )
        stream.emitted.add(fp)

    # ------------------------------------------------------------------ rule 4
    def _state(self, label: str, state: Mapping[str, Any]) -> None:
        descriptor = state.get("stream", {}).get("stream_descriptor", {})
        name = descriptor.get("name")
        stream_state = state.get("stream", {}).get("stream_state") or {}
        if (
            name not in self.streams
            or name not in CURSOR_FIELDS
            or not isinstance(stream_state.get("apps"), dict)
        ):
            return
        stream = self.streams[name]
        for partition, entry in stream_state["apps"].items():
            frontier = int(entry[CURSOR_FIELDS[name]])
            pending = {
                oid: int(p) - int(p) % HOUR_MS
                for oid, p in ((entry.get("backfill") or {}).get("objects") or {}).items()
            }
            stream.backfilled.update(pending)
            forward_begin = frontier - self.stream_lookback_ms.get(name, self.lookback_ms)
            forward_begin -= forward_begin % HOUR_MS
            ordered = self._partition(stream, partition)
            i = stream.verified.get(partition, 0)
            first_pending = None  # records still to come: checked again at a later state
            while i < len(ordered) and ordered[i][0] < frontier:
                cursor, fp = ordered[i]
                oid = stream.objects.get(fp)
                if (oid in pending and cursor >= pending[oid]) or (
                    oid in stream.backfilled and cursor >= forward_begin
                ):
                    first_pending = i if first_pending is None else first_pending
                    i += 1
                    continue
                assert fp in stream.emitted, (
                    f"{label}: a {name} STATE says app partition {partition} is read up to {frontier}, but this record "
                    f"before it was never emitted: {self._describe(name, fp)}"
                )
                i += 1
            stream.verified[partition] = i if first_pending is None else first_pending

    @staticmethod
    def _partition(stream: _Stream, partition: str) -> list[tuple[Any, bytes]]:
        if partition not in stream.by_partition:
            stream.by_partition[partition] = sorted(
                (cursor, fp)
                for fp, (app, cursor) in stream.position.items()
                if partition == "*" or str(app) == partition
            )
        return stream.by_partition[partition]

    def _describe(self, name: str, fp: bytes) -> str:
        record = self.streams[name].samples.get(fp)
        if record is None:
            return f"(cursor {self.streams[name].position[fp][1]})"
        try:
            return str(record_key(name, record))
        except KeyError:
            return _short(record)


def _frontiers(state: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per activity stream, the frontier of each app partition in the state a sync started from."""
    out: dict[str, dict[str, int]] = {}
    for message in state:
        stream = message.get("stream", {})
        name = stream.get("stream_descriptor", {}).get("name")
        apps = (stream.get("stream_state") or {}).get("apps")
        if name in CURSOR_FIELDS and isinstance(apps, dict):
            out[name] = {app: int(entry[CURSOR_FIELDS[name]]) for app, entry in apps.items()}
    return out


def _backfill_positions(state: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per backfilled stream and app partition, the objects whose history a sync resumes, with their positions."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for message in state:
        stream = message.get("stream", {})
        name = stream.get("stream_descriptor", {}).get("name")
        apps = (stream.get("stream_state") or {}).get("apps")
        if name in OBJECT_FIELDS and isinstance(apps, dict):
            out[name] = {
                app: dict((entry.get("backfill") or {}).get("objects") or {}) for app, entry in apps.items()
            }
    return out


def _short(record: Mapping[str, Any]) -> str:
    return orjson.dumps(record).decode()[:300]


def assert_never_lost(
    syncs: Sequence[Sync],
    expected: Mapping[str, Iterable[Mapping[str, Any]]],
    *,
    lookback_days: int,
    complete: bool = True,
    positions: Mapping[str, str] | None = None,
) -> Ledger:
    """The invariant over one scenario's syncs, in the order they ran; see the module docstring."""
    ledger = Ledger(expected, lookback_days, positions)
    for sync in syncs:
        ledger.feed(sync)
    ledger.finish(complete)
    return ledger
