"""Deletions in the catalogue: an object listed at the last sync and gone now becomes a deletion record.

The catalogue streams (features, pages, guides, track_types, reports, segments) and the streams of their child
objects (guide_steps, polls, poll_choices, page_rules, feature_rules: children/), read incrementally, save the
keys their listing held next to their cursor (`listed_ids`, a sorted list: an object's id, about 30 bytes per
object in the state, ~300 KB for 10,000 objects; a child's composite key as the JSON list of its values).
deletions/listed_ids.py (children/extractor.py for the children) notes every listed key as the pages arrive
(before the CDK's client-side cursor drops the unchanged objects). When the stream completes,
`CatalogueDeletions` (SourcePendo.read, in the main thread, in order with the stream's messages), before the
stream's COMPLETE status:
 * emits, for each saved key not listed now, `{<key fields>, <cursor>: <now ms>, "_ab_cdc_deleted_at": <now>}`
   (`{"id": …, "lastUpdatedAt": …}` for an object; Airbyte's convention: an append_dedup destination removes the
   row; the cursor makes the deletion the newest version of the row);
 * emits, as an ordinary record, each object listed now that the saved listing did not hold and the cursor
   did not let through (a deleted object that reappeared with its old lastUpdatedAt; a child added to a parent
   whose lastUpdatedAt did not move);
 * emits the stream's state again with the new listing.
Every earlier state message of the stream carries the saved listing, so a sync that fails or is killed before
the end notices the same deletions next time (a deletion may then arrive twice; append_dedup is unaffected).
A stream that does not complete, a first incremental sync (no saved listing) and full refresh emit no deletions.
A listing of no objects (of a child stream: of no parents) while the saved one held some is not trusted (one
warning, the saved listing kept): Pendo answering an empty list for a subscription that had objects is likelier
an error than a purge. Parents listed without children (the last poll removed) are trusted.
A saved listing that is not a list of ids fails that stream when it is read (its listing extractor raises the
config error, listed_ids.py), never the sync's other streams; the stream's state is not written back.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteRecordMessage,
    AirbyteStateMessage,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    FailureType,
    SyncMode,
    TraceType,
    Type,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..clock import now_ms

LISTED_KEY = "listed_ids"
DELETED_AT = "_ab_cdc_deleted_at"
LOGGER = logging.getLogger("airbyte")


@dataclass(frozen=True)
class Keyed:
    """A stream's primary key and cursor, as manifest.yaml declares them (unit_tests/test_catalogue_deletions.py
    holds the two to each other)."""

    key: tuple[str, ...]
    cursor: str

    def of(self, record: Mapping[str, Any]) -> str | None:
        """The record's key as saved in `listed_ids`: the id itself, or the JSON list of a composite key's values;
        None when a key field is not text (such a record is not tracked)."""
        values = [record.get(name) for name in self.key]
        if not all(isinstance(v, str) for v in values):
            return None
        return (
            values[0] if len(values) == 1 else json.dumps(values, ensure_ascii=False, separators=(",", ":"))
        )

    def fields(self, saved: str) -> dict[str, Any]:
        """The key fields of a saved key (`of` reversed)."""
        values = [saved] if len(self.key) == 1 else json.loads(saved)
        return dict(zip(self.key, values, strict=True))


OBJECT = Keyed(("id",), "lastUpdatedAt")
# The streams with deletions: their primary key and cursor
CATALOGUE_STREAMS: dict[str, Keyed] = {
    "features": OBJECT,
    "pages": OBJECT,
    "guides": OBJECT,
    "track_types": OBJECT,
    "reports": OBJECT,
    "segments": OBJECT,
    "guide_steps": Keyed(("guideId", "id"), "guideLastUpdatedAt"),
    "polls": Keyed(("guideId", "id"), "guideLastUpdatedAt"),
    "poll_choices": Keyed(("guideId", "pollId", "choiceId"), "guideLastUpdatedAt"),
    "page_rules": Keyed(("pageId", "rule"), "pageLastUpdatedAt"),
    "feature_rules": Keyed(("featureId", "elementPathRule"), "featureLastUpdatedAt"),
}


class Listings:
    """The objects each catalogue stream's listing held in this sync: key -> object, and how many parents a
    child stream's listing held (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, dict[str, Any]]] = {}
        self._parents: dict[str, int] = {}
        self._refused: dict[str, AirbyteTracedException] = {}

    def reset(self) -> None:
        with self._lock:
            self._objects.clear()
            self._parents.clear()
            self._refused.clear()

    def refuse(self, stream: str, error: AirbyteTracedException) -> None:
        """The stream's saved listing cannot be used: its read fails with `error` (listed_ids.py)."""
        with self._lock:
            self._refused[stream] = error

    def refused(self, stream: str) -> AirbyteTracedException | None:
        with self._lock:
            return self._refused.get(stream)

    def note(self, stream: str, record: Mapping[str, Any]) -> None:
        keyed = CATALOGUE_STREAMS.get(stream)
        key = keyed.of(record) if keyed else None
        if key is not None:
            with self._lock:
                self._objects.setdefault(stream, {})[key] = dict(record)

    def note_parent(self, stream: str) -> None:
        """A child stream's listing held one more parent (whether it has children or not)."""
        with self._lock:
            self._parents[stream] = self._parents.get(stream, 0) + 1

    def of(self, stream: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._objects.get(stream, {}))

    def listed_anything(self, stream: str) -> bool:
        """Whether this sync's listing held an object (of a child stream: a parent)."""
        with self._lock:
            return bool(self._objects.get(stream)) or self._parents.get(stream, 0) > 0


LISTINGS = Listings()


def saved_listing(stream: str, stream_state: Any) -> set[str] | None:
    """The listing a stream's saved state holds; None before the first incremental sync with deletions."""
    listed = getattr(stream_state, LISTED_KEY, None) if stream_state is not None else None
    if listed is None:
        return None
    keyed = CATALOGUE_STREAMS.get(stream, OBJECT)
    if not isinstance(listed, list) or not all(_is_saved_key(keyed, i) for i in listed):
        what = "object ids" if len(keyed.key) == 1 else f"JSON lists of {', '.join(keyed.key)}"
        message = (
            f"The saved state of stream {stream} is invalid: {LISTED_KEY} is not a list of {what}. Correct it "
            f"in the connection state, or clear the stream's data (reset {stream}) to sync it again."
        )
        raise AirbyteTracedException(
            message=message, internal_message=message, failure_type=FailureType.config_error
        )
    return set(listed)


def _is_saved_key(keyed: Keyed, saved: Any) -> bool:
    if not isinstance(saved, str):
        return False
    if len(keyed.key) == 1:
        return True
    try:
        values = json.loads(saved)
    except ValueError:
        return False
    return (
        isinstance(values, list) and len(values) == len(keyed.key) and all(isinstance(v, str) for v in values)
    )


class CatalogueDeletions:
    """Turns the end of each incremental catalogue stream into its deletion records (module docstring)."""

    def __init__(self, catalog: ConfiguredAirbyteCatalog | None, state: Iterable[AirbyteStateMessage] | None):
        self._tracked = {
            s.stream.name
            for s in (catalog.streams if catalog else [])
            if s.stream.name in CATALOGUE_STREAMS and s.sync_mode == SyncMode.incremental
        }
        self._saved: dict[str, set[str] | None] = {}
        self._refused: set[str] = (
            set()
        )  # saved listing unusable: the stream fails when read, its state is kept
        for message in state or []:
            stream = message.stream
            if stream is not None and stream.stream_descriptor.name in self._tracked:
                name = stream.stream_descriptor.name
                try:
                    self._saved[name] = saved_listing(name, stream.stream_state)
                except AirbyteTracedException as error:
                    LISTINGS.refuse(name, error)
                    self._refused.add(name)
        self._emitted: dict[str, set[str]] = {name: set() for name in self._tracked}
        self._last_state: dict[str, AirbyteMessage] = {}

    def process(self, message: AirbyteMessage) -> Iterator[AirbyteMessage]:
        """The message, with what deletions add around it."""
        if message.type == Type.RECORD and message.record and message.record.stream in self._tracked:
            key = CATALOGUE_STREAMS[message.record.stream].of(message.record.data)
            if key is not None:
                self._emitted[message.record.stream].add(key)
        elif message.type == Type.STATE and message.state and message.state.stream:
            name = message.state.stream.stream_descriptor.name
            if name in self._refused:
                return  # never written back: the saved state stays until it is corrected or the stream reset
            if name in self._tracked and message.state.stream.stream_state is not None:
                saved = self._saved.get(name)
                if saved is not None:  # until the stream completes, the listing of the last sync
                    setattr(message.state.stream.stream_state, LISTED_KEY, sorted(saved))
                self._last_state[name] = message
        elif message.type == Type.TRACE and message.trace and message.trace.type == TraceType.STREAM_STATUS:
            status = message.trace.stream_status
            if (
                status is not None
                and status.status == AirbyteStreamStatus.COMPLETE
                and status.stream_descriptor.name in self._tracked
            ):
                yield from self._complete(status.stream_descriptor.name)
        yield message

    def _complete(self, name: str) -> Iterator[AirbyteMessage]:
        listed = LISTINGS.of(name)
        saved = self._saved.get(name)
        if saved and not LISTINGS.listed_anything(name):
            LOGGER.warning(
                f"{name}: Pendo listed no objects, where the last sync listed {len(saved)}; not taking that as "
                "their deletion (kept for the next sync to compare with)."
            )
            return
        now = now_ms()
        keyed = CATALOGUE_STREAMS[name]
        if saved is not None:
            stamp = datetime.fromtimestamp(now / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
            gone = sorted(saved - set(listed))
            for key in gone:
                yield _record(name, {**keyed.fields(key), keyed.cursor: now, DELETED_AT: stamp}, now)
            back = sorted(set(listed) - saved - self._emitted[name])
            for key in back:  # as the CDK emits an object: a top-level null is left out
                yield _record(name, {k: v for k, v in listed[key].items() if v is not None}, now)
            if gone or back:
                LOGGER.info(
                    f"{name}: {len(gone)} object(s) deleted in Pendo since the last sync (deletion records "
                    f"emitted), {len(back)} listed again"
                )
        last = self._last_state.get(name)
        if last is None or last.state is None or last.state.stream is None:
            return
        state = copy.deepcopy(last)
        setattr(state.state.stream.stream_state, LISTED_KEY, sorted(listed))  # type: ignore[union-attr]
        self._saved[name] = set(listed)
        yield state


def _record(stream: str, data: Mapping[str, Any], now: int) -> AirbyteMessage:
    return AirbyteMessage(
        type=Type.RECORD, record=AirbyteRecordMessage(stream=stream, data=dict(data), emitted_at=now)
    )
