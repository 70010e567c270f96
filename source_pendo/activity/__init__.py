"""The activity subsystem: events rollups, raw guide/poll events and visitor history, read by window."""
