"""Many RECORD messages of one stream, already serialised: the lean record path of the activity streams.

Why: the CDK's per-record path (Record -> queue -> AirbyteMessage -> serpyco -> orjson) costs ~30 us a
record here (PERF_NOTES.md). Activity rows arrive as JSON bytes from the streaming reader; splicing
each into a RECORD line (`{"type":"RECORD","record":{"stream":..,"data":<row>,"emitted_at":..}}`) is
byte-for-byte the message the CDK would print, without parsing and re-encoding the row.

A `RecordBatch` is an `AirbyteMessage` so it travels through the concurrent framework's message
queue in order with the state messages of its partition. Our entrypoint prints its lines as they are;
under any other entrypoint `SourcePendo.read` expands it into ordinary record messages first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, Type

BATCH_ROWS = 2000


class RecordBatch(AirbyteMessage):
    """`count` RECORD lines of `stream`, newline-separated, without a trailing newline."""

    def __init__(self, stream: str, lines: bytes, count: int) -> None:
        super().__init__(type=Type.RECORD)
        self.stream = stream
        self.lines = lines
        self.count = count

    def to_messages(self) -> Iterator[AirbyteMessage]:
        """The same records as ordinary messages, for consumers that do not print batches."""
        for line in self.lines.split(b"\n"):
            record = orjson.loads(line)["record"]
            yield AirbyteMessage(
                type=Type.RECORD,
                record=AirbyteRecordMessage(stream=record["stream"], data=record["data"], emitted_at=record["emitted_at"]),
            )


class RecordBatchBuilder:
    """Collects row JSON (optionally with a leading field spliced in) and cuts batches of BATCH_ROWS."""

    def __init__(self, stream: str, batch_rows: int = BATCH_ROWS) -> None:
        self._prefix = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(stream) + b',"data":'
        self._stream = stream
        self._batch_rows = batch_rows
        self._rows: list[bytes] = []
        self.total = 0

    def add(self, row: bytes, leading_field: bytes | None = None, leading_value: int | None = None) -> RecordBatch | None:
        """Add one row; `leading_field`/`leading_value` put e.g. `"periodStart":123` first in the object."""
        if leading_field is not None:
            row = b"{%s:%d%s%s" % (leading_field, leading_value, b"," if len(row) > 2 else b"", row[1:])
        self._rows.append(row)
        self.total += 1
        if len(self._rows) >= self._batch_rows:
            return self.flush()
        return None

    def flush(self) -> RecordBatch | None:
        if not self._rows:
            return None
        suffix = b',"emitted_at":%d}}' % (time.time_ns() // 1_000_000)
        lines = self._prefix + (suffix + b"\n" + self._prefix).join(self._rows) + suffix
        batch = RecordBatch(self._stream, lines, len(self._rows))
        self._rows = []
        return batch
