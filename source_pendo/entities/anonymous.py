"""Anonymous visitors and the `visitors` stream's state: a sync after `include_anonymous_visitors` was turned on
reads visitors whole again.

The visitors stream's cursor is `lastupdated`: anonymous visitors whose lastupdated lies before the saved cursor
were left out by the syncs that had the setting off, and an incremental read would never see them. So the setting
is saved beside the cursor (`with_anonymous_setting`, on every STATE message of the stream) and, when it was off
and is on now, the saved cursor is dropped before the source is built (`backfill_anonymous_visitors`). The
activity streams keep the setting in their own state (activity/cursor.py).
"""

from __future__ import annotations

import logging
from typing import Any

from airbyte_cdk.models import AirbyteStateMessage

ANONYMOUS_SETTING = "include_anonymous_visitors"
ENTITY_STREAMS_WITH_ANONYMOUS = (
    "visitors",
)  # the activity streams keep the setting in their own state (cursor.py)
LOGGER = logging.getLogger("airbyte")


def backfill_anonymous_visitors(
    state: list[AirbyteStateMessage] | None, anonymous: bool
) -> list[AirbyteStateMessage] | None:
    """The state without the visitors stream's cursor when include_anonymous_visitors was turned on since the
    state was saved (it records the setting, see `with_anonymous_setting`): anonymous visitors whose lastupdated
    is before that cursor were never read, so visitors is read whole again (a backfill; append_dedup merges)."""
    if not anonymous or not state:
        return state
    kept = []
    for message in state:
        stream = message.stream
        saved = (
            getattr(stream.stream_state, ANONYMOUS_SETTING, None) if stream and stream.stream_state else None
        )
        if stream and stream.stream_descriptor.name in ENTITY_STREAMS_WITH_ANONYMOUS and saved is False:
            LOGGER.warning(
                f"{stream.stream_descriptor.name}: include_anonymous_visitors was turned on since the last sync, "
                "whose records left anonymous visitors out: reading the stream whole again (a backfill: with "
                "append_dedup the records already synced merge on the primary key; with append they arrive again)."
            )
            continue
        kept.append(message)
    return kept


def with_anonymous_setting(message: Any, anonymous: bool) -> Any:
    """A STATE message of the visitors stream records include_anonymous_visitors next to the cursor."""
    state = getattr(message, "state", None)
    stream = getattr(state, "stream", None) if state is not None else None
    if (
        stream is not None
        and stream.stream_descriptor.name in ENTITY_STREAMS_WITH_ANONYMOUS
        and stream.stream_state is not None
    ):
        setattr(stream.stream_state, ANONYMOUS_SETTING, anonymous)
    return message
