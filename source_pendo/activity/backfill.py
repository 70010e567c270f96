"""A new tag's history: feature_events and page_events read the whole history of objects tagged or re-ruled.

Why: Pendo matches a Page or Feature tag against the raw events of its whole history when the tag is created or
its rule is edited, newest first, over hours (BEHAVIOR.md §F-1). A stream that only moves forward from its
frontier never sees that history: a feature tagged today would have usage from today only.

What happens each sync (incremental, `backfill_new_tags` on):
 1. `read_catalogue` reads the catalogue once (`GET /feature?expand=*` or `GET /page?expand=*`, the stream's
    `catalogue_requester` in manifest.yaml): each object's id, app and change time, max(createdAt,
    lastUpdatedAt) (both set by Pendo; an edit of the rule moves lastUpdatedAt). A first sync reads it too, to
    save the watermark; a catalogue Pendo refuses is a warning (unfinished lanes go on, new ones wait).
 2. `TagBackfill.plan`, for each app partition with a saved frontier F: an object is due when it changed after
    the app's watermark (the newest change time the previous sync listed) or less than `tag_settle_days` ago
    (Pendo may still be reprocessing it: its history is read again on every sync until the change is that
    old). The watermark is Pendo's own clock, never compared with the connector's, so an object tagged a
    minute before a sync is found by the next one.
 3. each due object is a lane: windows of [start_date, F - lookback), up to where the forward windows begin (each
    row is read once), read by the same retriever as forward windows with the object's id in the source
    (`featureId`/`pageId`, the form tap-pendo sends; pendo.OBJECT_ID_PARAM), interleaved with the forward
    windows of every app (cursor.py hands them out round-robin).
 4. state, under the app's entry: `{"backfill": {"watermark": W, "objects": {id: position}}}`. A due object is
    written there before its first window, and its position moves through windows completed contiguously
    (the cursor's AppProgress): a killed sync resumes each lane where it stopped. A lane that reaches its end is
    removed. Bounded: only objects being read are listed (27-character ids: ~46 bytes each in JSON).

The rows have the forward rows' primary key, so append_dedup merges them. With no saved frontier (a first
sync, a reset, a start_date moved back) the forward read covers everything and there is nothing to backfill.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airbyte_cdk.sources.declarative.requesters.requester import Requester

from ..pendo import MAX_WINDOW_MS

LOGGER = logging.getLogger("airbyte")
BACKFILL_KEY = "backfill"
MAX_MS = 253_402_300_799_999


@dataclass(frozen=True)
class CatalogueObject:
    id: str
    app_id: str
    changed_at: int  # epoch ms: max(createdAt, lastUpdatedAt)


@dataclass(frozen=True)
class Lane:
    """One object's history read in this sync: windows of [begin, end) of app partition `app`."""

    app: str
    object_id: str
    begin: int
    end: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.object_id)


@dataclass
class SavedBackfill:
    watermark: int | None
    objects: dict[str, int]  # object id -> position: its history is read from here on


def read_catalogue(requester: Requester) -> list[CatalogueObject]:
    """The catalogue's objects (one GET); objects without an id, app or change time are left out."""
    response = requester.send_request()
    if response is None:
        return []
    out = []
    for obj in response.json() or []:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("id"), str):
            continue
        times = [t for t in (obj.get("createdAt"), obj.get("lastUpdatedAt")) if isinstance(t, int)]
        if obj.get("appId") is None or not times:
            continue
        out.append(CatalogueObject(obj["id"], str(obj["appId"]), max(times)))
    return out


class TagBackfill:
    """Plans the lanes of one stream's sync and keeps their state (see the module docstring)."""

    def __init__(
        self,
        *,
        stream_name: str,
        catalogue: Callable[[], list[CatalogueObject]],
        settle_ms: int,
        start_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self._stream_name = stream_name
        self._catalogue = catalogue
        self._settle_ms = settle_ms
        self._start_ms = start_ms
        self._clock = clock
        self._saved: dict[str, SavedBackfill] = {}
        self._watermarks: dict[str, int | None] = {}
        self._lanes: dict[tuple[str, str], Lane] = {}
        self.positions: dict[tuple[str, str], int] = {}  # lane -> contiguous position (the cursor moves it)

    # ------------------------------------------------------------------ saved state
    def load(self, app: str, entry: Mapping[str, Any], invalid: Callable[[str], Exception]) -> None:
        """Checks and keeps apps[app].backfill of the saved state (absent in states saved before it existed)."""
        saved = entry.get(BACKFILL_KEY)
        if saved is None:
            return
        where = f"apps[{app}].{BACKFILL_KEY}"
        if not isinstance(saved, Mapping) or not isinstance(saved.get("objects", {}), Mapping):
            raise invalid(f"{where} is not an object with a watermark and objects")
        watermark = saved.get("watermark")
        if watermark is not None and not _is_ms(watermark):
            raise invalid(f"{where}.watermark is not a time in epoch milliseconds")
        objects: dict[str, int] = {}
        for oid, position in saved.get("objects", {}).items():
            if not _is_ms(position):
                raise invalid(f"{where}.objects[{str(oid)[:40]}] is not a time in epoch milliseconds")
            objects[str(oid)] = int(position)
        self._saved[app] = SavedBackfill(None if watermark is None else int(watermark), objects)

    def state_of(self, app: str) -> dict[str, Any] | None:
        """apps[app].backfill of the state to save, or None when there is nothing to keep."""
        watermark = self._watermarks.get(app, self._saved[app].watermark if app in self._saved else None)
        objects = {
            oid: self.positions[(lane_app, oid)]
            for (lane_app, oid), lane in self._lanes.items()
            if lane_app == app and self.positions[(lane_app, oid)] < lane.end
        }
        if app not in self._watermarks and app in self._saved:  # not planned this sync: kept as saved
            objects = dict(self._saved[app].objects)
        if watermark is None and not objects:
            return None
        return {"watermark": watermark, "objects": objects}

    # ------------------------------------------------------------------ planning
    def plan(self, frontiers: Mapping[str, int | None]) -> list[Lane]:
        """The lanes of this sync: saved unfinished objects, then objects changed since the watermark or within
        the settle period, for every app partition with a saved frontier (the catalogue is read on every sync,
        a first one included, so the next sync knows what is new)."""
        if (
            not frontiers
        ):  # every app's saved state is after now (state.py, `ahead`): nothing to read, none planned
            return []
        try:
            objects: list[CatalogueObject] | None = self._catalogue()
        except Exception as error:  # the forward read goes on; unfinished lanes resume; new ones wait
            LOGGER.warning(
                f"{self._stream_name}: could not read the catalogue to find new or changed tags ({error}); their "
                "history is looked for again on the next sync. Unfinished history reads go on."
            )
            objects = None
        settled_before = self._clock() - self._settle_ms
        lanes: list[Lane] = []
        for app, end in frontiers.items():
            saved = self._saved.get(app, SavedBackfill(None, {}))
            mine = [o for o in objects or [] if app == "*" or o.app_id == app]
            newest = max((o.changed_at for o in mine), default=None)
            self._watermarks[app] = max((w for w in (saved.watermark, newest) if w is not None), default=None)
            if end is None:  # the forward read covers the whole history: nothing to backfill
                continue
            listed = {o.id for o in mine}
            due = {  # a deleted object has no history left to read
                oid: position for oid, position in saved.objects.items() if objects is None or oid in listed
            }
            if objects is not None:
                since = settled_before if saved.watermark is None else min(saved.watermark, settled_before)
                for obj in mine:
                    if obj.changed_at > since and obj.id not in due:
                        due[obj.id] = self._start_ms
            for oid, position in due.items():
                lane = Lane(app, oid, max(self._start_ms, position), end)
                self._lanes[lane.key] = lane
                self.positions[lane.key] = lane.begin
                if lane.begin < lane.end:
                    lanes.append(lane)
        if lanes:
            shown = sorted({lane.object_id for lane in lanes})
            LOGGER.info(
                f"{self._stream_name}: reading the history of {len(lanes)} new or changed tag(s) from start_date "
                f"({', '.join(shown[:10])}{', …' if len(shown) > 10 else ''})"
            )
        return lanes


def _is_ms(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= MAX_MS
        and float(value).is_integer()
    )


# Windows of a lane: one object's rows are sparse, so a lane starts at the largest window (and shrinks after a
# dense one, as every window does).
LANE_INITIAL_WINDOW_MS = MAX_WINDOW_MS
