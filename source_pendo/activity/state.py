"""The saved state of an activity stream: read and checked before it is trusted, and the state to save built.

State (one per stream):
    {"version": 1, "period": "DAY", "start_date": "2024-01-01", "include_anonymous_visitors": false,
     "apps": {"-323232": {"periodStart": 1709251200000}, ...}}
The saved state is validated before it is trusted (_valid_apps): a frontier that is not a whole number of
epoch ms, is negative or beyond year 9999, or an app key that is not an app id or `*`, is one config_error
naming the stream and the key, never read and never written back. App keys are trimmed. The error is raised
when the stream is read (`SavedState.resume` keeps it, the cursor raises it from stream_slices), never while
the streams are built: one stream's unusable state fails that stream only, and a stream not selected in the
catalog is never judged by its state.
A frontier after now (a state edited by hand, or saved by a machine whose clock was ahead) is not an error:
that app has nothing to read yet (`ahead`), and its frontier is saved again as it was, with one WARNING, as
Airbyte expects of a source given a state from the future.
With `backfill_new_tags`, an app's entry also holds `"backfill": {"watermark": <ms>, "objects": {<id>: <ms>}}`,
the history of new or re-ruled tags still being read (backfill.py), checked by TagBackfill.load.
A frontier F means every bucket starting before F was read after it had closed; the next sync starts
each app at F - lookback. F only moves through windows that completed contiguously from the app's
first window, so state never runs ahead of emitted records, even with windows read in parallel.

With `end_date` (WindowPolicy.end_ms) no window ends after it and the frontier stops there; once an app's
frontier has reached it, later syncs read nothing for that app (no lookback either).

Settings changes: a new period fails with a message saying what to reset (day and hour rows cannot
share a table); an earlier start_date re-reads from it (instants are compared: 2024-01-01 and
2024-01-01T00:00:00Z are one start); include_anonymous_visitors turned on since the last sync (the state
saves it) re-reads every app from start_date, a backfill of the anonymous rows the earlier syncs left out; an app new to the state starts at start_date,
or at the `*` frontier when the previous syncs read all apps at once; switching from a list of apps to
all apps re-reads from start_date (apps outside the old list have no history yet); changed `filters` (the
state saves their fingerprint under "filters") re-read every app from start_date, with a WARNING that says
so and how to drop rows the new filters leave out.

Only the lanes a sync reads are saved back, and the `*` frontier: an app no longer in `app_ids` (or every app id
when `app_ids` became empty) is dropped from the state when it is saved, so the state never grows with apps
that are gone (issue 24: 100,000 stale apps made a 5.2 MB state). An app dropped and added back later starts
like a new app (at the `*` frontier, or start_date).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..settings.config import is_app_id
from ..settings.dates import parse_start_date
from .backfill import BACKFILL_KEY, TagBackfill
from .windows import AppProgress, iso_minute

STATE_VERSION = 1
ALL_APPS = "*"
ANONYMOUS_KEY = "include_anonymous_visitors"
FILTERS_KEY = "filters"  # the stream's filters fingerprint, only when it has conditions
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: no epoch-ms time is later
LOGGER = logging.getLogger("airbyte")


def _shown(value: Any) -> str:
    """A saved value as JSON for a message, cut short (a corrupted state may hold anything)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:40] + "…"


def _instant(date: str) -> float:
    return parse_start_date(date).timestamp()


@dataclass(frozen=True)
class StateContext:
    """The state a stream resumes from, the settings it was saved under, and where new state goes."""

    stream_state: Mapping[str, Any]
    start_date: str  # the config's, saved in the state: an earlier one re-reads from it
    period_sensitive: bool  # rollups: a saved state of another period is a config error
    message_repository: MessageRepository
    connector_state_manager: ConnectorStateManager
    # The config's include_anonymous_visitors, saved in the state: turned on since, every app is re-read
    include_anonymous: bool = False
    # The fingerprint of the stream's `filters` (filters.StreamFilter), saved in the state: changed since, every
    # app is re-read from start_date; `filters_summary` says what the conditions are now, for the log line
    filters: str | None = None
    filters_summary: str = ""


class SavedState:
    """One stream's saved state: the frontier each app partition resumes from (`frontiers`, after the settings
    rules of the module docstring), and the state to save (`to_save`)."""

    def __init__(
        self,
        *,
        stream_name: str,
        cursor_key: str,
        period: str,
        context: StateContext,
        clock: Callable[[], int],
        backfill: TagBackfill | None,
    ) -> None:
        self._stream_name = stream_name
        self._cursor_key = cursor_key
        self._period = period
        self._start_date = context.start_date
        self._include_anonymous = context.include_anonymous
        self._filters = context.filters
        self._filters_summary = context.filters_summary
        self._clock = clock
        self._backfill = backfill
        self._saved_apps: dict[str, Any] = {}
        self.ahead: frozenset[str] = (
            frozenset()
        )  # apps whose saved frontier is after now: nothing to read yet
        self.error: AirbyteTracedException | None = None  # the state cannot be used (resume): raised on read
        self._unusable: Mapping[str, Any] = {}

    def resume(
        self, state: dict[str, Any], partitions: list[str], period_sensitive: bool
    ) -> dict[str, int | None]:
        """`frontiers`, or, for a state that cannot be used, no frontier and the error kept in `error` for the
        stream's read to raise (the stream fails, naming itself; the streams of the sync go on). Such a state is
        never written back (`to_save` is the saved state as it was; the cursor emits none)."""
        try:
            return self.frontiers(state, partitions, period_sensitive)
        except AirbyteTracedException as error:
            self.error = error
            self._unusable = state
            return dict.fromkeys(partitions)

    def raise_if_unusable(self) -> None:
        """The saved state's error (`resume`), when the stream is about to be read."""
        if self.error is not None:
            raise self.error

    def frontiers(
        self, state: dict[str, Any], partitions: list[str], period_sensitive: bool
    ) -> dict[str, int | None]:
        """Frontier per app to resume from, after applying the settings-change rules."""
        self._saved_apps = {}
        if not state:
            return {app: None for app in partitions}
        if state.get("version") != STATE_VERSION or not isinstance(state.get("apps"), dict):
            raise AirbyteTracedException(
                message=f"The saved state of stream {self._stream_name} is not in a format this connector version knows. Clear the stream's data (reset it) to sync it from start_date again.",
                internal_message=f"unrecognised state {state!r}",
                failure_type=FailureType.config_error,
            )
        if period_sensitive and state.get("period") not in (None, self._period):
            raise AirbyteTracedException(
                message=(
                    f"The period changed from {state.get('period')} to {self._period} since the last sync of {self._stream_name}. "
                    f"Day rows and hour rows have a different grain and cannot share one table: clear the data of the activity streams "
                    f"(events, feature_events, page_events, track_events) to re-sync them by {self._period}, or set period back to {state.get('period')}."
                ),
                failure_type=FailureType.config_error,
            )
        saved = self._valid_apps(state["apps"])
        earlier_start = self._start_moved_back(state.get("start_date"))
        anonymous_on = self._include_anonymous and state.get(ANONYMOUS_KEY) is False
        filters_changed = state.get(FILTERS_KEY) != self._filters
        reread = earlier_start or anonymous_on or filters_changed
        frontiers: dict[str, int | None] = {}
        for app in partitions:
            if reread:
                frontiers[app] = None
            elif app in saved:
                frontiers[app] = saved[app]
            elif app != ALL_APPS and ALL_APPS in saved:
                frontiers[app] = saved[ALL_APPS]
            else:
                frontiers[app] = None
        if earlier_start:
            LOGGER.info(
                f"{self._stream_name}: start_date moved back to {self._start_date}; re-reading every app from it."
            )
        elif anonymous_on:
            LOGGER.warning(
                f"{self._stream_name}: include_anonymous_visitors was turned on since the last sync, whose rows left "
                f"anonymous visitors out: re-reading every app from start_date {self._start_date} (a backfill: with "
                "append_dedup the rows already synced merge on the primary key; with append they arrive again)."
            )
        elif filters_changed:
            now = f"now {self._filters_summary}" if self._filters else "now none"
            LOGGER.warning(
                f"{self._stream_name}: its filters changed since the last sync ({now}): re-reading every app from "
                f"start_date {self._start_date} under the new filters. Rows the old filters let through and the new "
                f"ones leave out stay in the destination: clear the stream's data (reset {self._stream_name}) to drop "
                "them; with append_dedup the rows read again merge on the primary key."
            )
        new_apps = [a for a in partitions if frontiers[a] is None and saved]
        if new_apps and not reread:
            LOGGER.info(
                f"{self._stream_name}: no saved progress for app partition(s) {', '.join(new_apps)}; reading them from start_date."
            )
        # Only the lanes this sync reads are saved back (an app no longer in `app_ids`, or every app id once
        # `app_ids` is empty, would stay in the state forever), but the `*` frontier: it is one entry, and an app
        # added to `app_ids` later starts from it (the rule above), not from start_date.
        key = self._cursor_key
        dropped = [app for app in saved if app not in partitions and app != ALL_APPS]
        if dropped:
            LOGGER.info(
                f"{self._stream_name}: the saved state holds {len(dropped)} app(s) this sync does not read "
                f"(not in app_ids, e.g. {_shown(dropped[0])}); their progress is not saved again."
            )
        self._saved_apps = {
            app: {key: f} for app, f in saved.items() if app == ALL_APPS and app not in partitions
        }
        return frontiers

    def _invalid(self, what: str, fix: str = "") -> AirbyteTracedException:
        message = (
            f"The saved state of stream {self._stream_name} is invalid: {what}. {fix or 'Correct it in the connection state, or '}"
            f"clear the stream's data (reset {self._stream_name}) to sync it from start_date again."
        )
        return AirbyteTracedException(
            message=message, internal_message=message, failure_type=FailureType.config_error
        )

    def _valid_apps(self, apps: Mapping[Any, Any]) -> dict[str, int]:
        """The saved frontier of each app partition, each checked: a frontier is a past time in epoch ms, under
        a trimmed app id or `*`. A value the connector could never have saved is a config error, never trusted
        (a frontier in the future would skip every window silently) and never written back."""
        key = self._cursor_key
        now = self._clock()
        frontiers: dict[str, int] = {}
        for raw_app, entry in apps.items():
            app = str(raw_app).strip()
            where = f"apps[{_shown(raw_app)}]"
            if app != ALL_APPS and not is_app_id(app):
                raise self._invalid(f"{where} is not an app id (a whole number) or * (all apps)")
            if not isinstance(entry, Mapping) or key not in entry:
                raise self._invalid(f"{where} has no {key}")
            value = entry[key]
            where = f"{where}.{key}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._invalid(f"{where} is {_shown(value)}, not a time in epoch milliseconds")
            if not 0 <= value <= MAX_MS or (isinstance(value, float) and not value.is_integer()):
                raise self._invalid(
                    f"{where} is not a time in epoch milliseconds (a whole number from 0 to year 9999)"
                )
            frontier = int(value)
            # two keys that trim to one app (" 123" and "123"): the earlier frontier, so nothing is skipped
            frontiers[app] = min(frontier, frontiers.get(app, frontier))
            if self._backfill is not None:
                self._backfill.load(app, entry, self._invalid)
        ahead = {app: frontier for app, frontier in frontiers.items() if frontier > now}
        for app, frontier in ahead.items():
            LOGGER.warning(
                f"{self._stream_name}: app {app}: the saved state is at {iso_minute(frontier)}, after now "
                f"({iso_minute(now)}): nothing to read until then, and the state is kept as saved. The connector "
                "never saves a position it has not read: the state was edited, or saved by a machine whose clock "
                f"was ahead. If rows since then are missing, set apps.{app}.{key} to the last time you know was "
                f"synced in the connection state, or clear the stream's data (reset {self._stream_name})."
            )
        self.ahead = frozenset(ahead)
        return frontiers

    def _start_moved_back(self, saved: Any) -> bool:
        """Whether the config's start_date is an earlier instant than the saved one (instants, not strings:
        2024-01-01 and 2024-01-01T00:00:00Z are the same start)."""
        if saved is None:
            return False
        if not isinstance(saved, str):
            raise self._invalid(f"start_date is {_shown(saved)}, not a date")
        try:
            return _instant(self._start_date) < _instant(saved)
        except ValueError:
            raise self._invalid(f"start_date is {_shown(saved)}, not a date") from None

    def to_save(self, progress: Mapping[str, AppProgress]) -> MutableMapping[str, Any]:
        """The whole state to save: the frontier of every app partition read so far, the saved `*` (all apps)
        frontier when this sync reads a list of apps (no other app this sync does not read), and the settings; a state that cannot be used (`resume`)
        as it was saved."""
        if self.error is not None:
            return dict(self._unusable)
        key = self._cursor_key
        apps: dict[str, Any] = dict(self._saved_apps)
        for app, lane in progress.items():
            if lane.frontier is not None:
                apps[app] = {key: lane.frontier}
                backfill = self._backfill.state_of(app) if self._backfill is not None else None
                if backfill is not None:
                    apps[app][BACKFILL_KEY] = backfill
        state = {
            "version": STATE_VERSION,
            "period": self._period,
            "start_date": self._start_date,
            ANONYMOUS_KEY: self._include_anonymous,
            "apps": apps,
        }
        if self._filters is not None:
            state[FILTERS_KEY] = self._filters
        return state
