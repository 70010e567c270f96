"""The connector's one reading of the current time.

Everything that decides what to read by "now" (which buckets are still open, how far back visitor
history goes, whether `start_date` lies in the future) asks `now_ms()`. Tests pin it with the
environment variable `SOURCE_PENDO_NOW_MS` (epoch milliseconds), as the emulator takes `--now`, so no
test depends on the wall clock. Timestamps of messages (`emitted_at`) keep the real time.
"""

from __future__ import annotations

import os
import time

NOW_ENV = "SOURCE_PENDO_NOW_MS"


def now_ms() -> int:
    """The current time in epoch milliseconds, or the pinned instant when `SOURCE_PENDO_NOW_MS` is set."""
    pinned = os.environ.get(NOW_ENV)
    if pinned:
        return int(pinned)
    return int(time.time() * 1000)
