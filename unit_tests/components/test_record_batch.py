"""The batch gate: bounded batches in flight, and every wait ended the moment the writer is gone."""

from __future__ import annotations

import threading
import time

import pytest

from source_pendo.activity.record_batch import BatchGate, RecordBatchBuilder, WriterGone


def test_the_gate_blocks_a_reader_while_the_limit_is_reached_and_lets_it_in_when_a_batch_is_written():
    gate = BatchGate(2)
    gate.enter()
    gate.enter()
    entered = threading.Event()
    reader = threading.Thread(target=lambda: (gate.enter(), entered.set()), daemon=True)
    reader.start()
    assert not entered.wait(0.2), "a third batch was let in with two outstanding"
    gate.leave()
    assert entered.wait(2)


def test_closing_the_gate_ends_every_wait_at_once_and_every_later_one():
    """The writer is gone (stdout closed): readers waiting for a slot must not sit out the gate's timeout."""
    gate = BatchGate(1)
    gate.enter()
    outcomes: list[str] = []

    def wait() -> None:
        try:
            gate.enter()
            outcomes.append("entered")
        except WriterGone:
            outcomes.append("gone")

    readers = [threading.Thread(target=wait, daemon=True) for _ in range(4)]
    for reader in readers:
        reader.start()
    time.sleep(0.2)
    started = time.monotonic()
    gate.close()
    for reader in readers:
        reader.join(2)
    assert outcomes == ["gone"] * 4 and time.monotonic() - started < 1
    builder = RecordBatchBuilder("events", gate=gate)
    builder.add(b'{"a":1}')
    with pytest.raises(WriterGone):
        builder.flush()
