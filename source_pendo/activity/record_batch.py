"""Many RECORD messages of one stream, already serialised: the lean record path of the activity streams.

Why: the CDK's per-record path (Record -> queue -> AirbyteMessage -> serpyco -> orjson) costs ~30 us a
record here (measured in bench/: the plain declarative manifest in bench/results/). Activity rows arrive as JSON bytes from the streaming reader; splicing
each into a RECORD line (`{"type":"RECORD","record":{"stream":..,"data":<row>,"emitted_at":..}}`) is
byte-for-byte the message the CDK would print, without parsing and re-encoding the row.

A `RecordBatch` is an `AirbyteMessage` so it travels through the concurrent framework's message
queue in order with the state messages of its partition. Our entrypoint writes its parts to stdout as
they are; under any other entrypoint `SourcePendo.read` expands it into ordinary record messages first.

Memory: the CDK's queue holds up to 10,000 messages, so when stdout is slower than Pendo (a busy
destination) the batches would pile up there. `IN_FLIGHT` bounds the batches made but not yet written:
a reader waits for the writer before it cuts another one. When the writer is gone for good (the
destination closed stdout: entrypoint.launch), `IN_FLIGHT.close()` ends every wait at once and any later
one: `enter` raises `WriterGone`, so no reader sits out its timeout on a gate nobody will open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import orjson
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, Type

BATCH_ROWS = 2000
MAX_BATCHES_IN_FLIGHT = 16
GATE_WAIT_SECONDS = (
    120  # a batch nobody writes (a consumer that stopped reading) must not hang a reader forever
)
LOGGER = logging.getLogger("airbyte")


class WriterGone(RuntimeError):
    """The batches' writer stopped for good (stdout closed): nothing made now would ever be written."""


class BatchGate:
    """Counts batches made and not yet written; `enter` blocks while `limit` of them are outstanding.

    `close()` (the writer is gone) wakes every waiting `enter`, and makes every later one, raise `WriterGone`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._outstanding = 0
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    def enter(self) -> None:
        deadline = time.monotonic() + GATE_WAIT_SECONDS
        with self._changed:
            while self._outstanding >= self._limit and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    LOGGER.warning(
                        f"No record batch was written for {GATE_WAIT_SECONDS} s; continuing without waiting for the writer."
                    )
                    break
                self._changed.wait(left)
            if self._closed:
                raise WriterGone("the destination stopped reading the connector's output")
            self._outstanding += 1

    def leave(self) -> None:
        with self._changed:
            # More leaves than enters (a batch made after a timed-out enter) frees nothing.
            self._outstanding = max(0, self._outstanding - 1)
            self._changed.notify()

    def close(self) -> None:
        """The writer is gone: every wait ends now (WriterGone), and so does every later one."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


IN_FLIGHT = BatchGate(MAX_BATCHES_IN_FLIGHT)


class RecordBatch(AirbyteMessage):
    """`count` RECORD lines of `stream`: the bytes of `parts` concatenated, newline-separated, no trailing newline."""

    def __init__(self, stream: str, parts: list[bytes], count: int, gate: BatchGate | None = None) -> None:
        super().__init__(type=Type.RECORD)
        self.stream = stream
        self.parts = parts
        self.count = count
        self._gate = gate

    def release(self) -> None:
        """The batch was written (or expanded): its slot in the in-flight gate is free. Idempotent."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave()

    @property
    def lines(self) -> bytes:
        return b"".join(self.parts)

    def to_messages(self) -> Iterator[AirbyteMessage]:
        """The same records as ordinary messages, for consumers that do not print batches."""
        for line in self.lines.split(b"\n"):
            record = orjson.loads(line)["record"]
            yield AirbyteMessage(
                type=Type.RECORD,
                record=AirbyteRecordMessage(
                    stream=record["stream"], data=record["data"], emitted_at=record["emitted_at"]
                ),
            )


class RecordBatchBuilder:
    """Collects data objects (one row, or a block of rows already joined by `separator`) into batches."""

    def __init__(self, stream: str, batch_rows: int = BATCH_ROWS, gate: BatchGate = IN_FLIGHT) -> None:
        self._prefix = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(stream) + b',"data":'
        self._stream = stream
        self._batch_rows = batch_rows
        self._gate = gate
        self._parts: list[bytes] = []
        self._count = 0
        self._suffix = self._separator = b""
        self.total = 0

    @property
    def separator(self) -> bytes:
        """What goes between two data objects of the current batch: the end of a RECORD line, the start of the next."""
        if not self._separator:
            self._suffix = b',"emitted_at":%d}}' % (time.time_ns() // 1_000_000)
            self._separator = self._suffix + b"\n" + self._prefix
        return self._separator

    def add(
        self, row: bytes, leading_field: bytes | None = None, leading_value: int = 0
    ) -> RecordBatch | None:
        """Add one row; `leading_field`/`leading_value` put e.g. `"periodStart":123` first in the object."""
        if leading_field is not None:
            row = b"{%s:%d%s%s" % (leading_field, leading_value, b"," if len(row) > 2 else b"", row[1:])
        return self.add_block(row, 1)

    def add_block(self, block: bytes, count: int) -> RecordBatch | None:
        """Add `count` data objects joined by `separator` (read it after the previous batch was cut)."""
        separator = self.separator  # also fixes this batch's emitted_at
        self._parts.append(separator if self._parts else self._prefix)
        self._parts.append(block)
        self._count += count
        self.total += count
        if self._count >= self._batch_rows:
            return self.flush()
        return None

    def flush(self) -> RecordBatch | None:
        """The rows added since the last batch as one batch (after a slot of the in-flight gate is free)."""
        if not self._parts:
            return None
        self._parts.append(self._suffix)
        self._gate.enter()
        batch = RecordBatch(self._stream, self._parts, self._count, self._gate)
        self._parts, self._count, self._separator = [], 0, b""
        return batch
