"""The activity subsystem: events rollups, raw guide/poll events and visitor history, read window by window.

manifest.yaml declares these streams (retriever, primary key, schema loader, cursor field, start, lookback);
this package is the Python that reads them. Its modules, in the order data flows through them:

    streams.py          the stream object, built from the manifest's declaration around the window cursor
    cursor.py           (lane, window) partitions out; the frontier state emitted after every window in
    windows.py          which windows, how big (grow while sparse, shrink when dense), how far done
    state.py            the saved state read and checked, the settings-change rules, the state to save
    backfill.py         a new or re-ruled tag's history: which objects, read as (app, object) lanes of windows
    retriever.py        the manifest's retriever: one window, the face the CDK calls
    pager.py            the pages of one window: keyset follow-ups (exact under one or per-period
                        pipelines), resumes after a broken body, splits, raw events by halves
    progress.py         Pendo's counts against the rows read: the ESTIMATE messages and the closing line
    bodies.py           the aggregation body of each request
    pages.py            what a page emitted (PageState), where records go, the body as it arrives
    rows.py             the streaming body parser: network chunks -> blocks of whole rows
    records.py          a block of rows -> RECORD data, most often in one piece (RowFormat)
    record_batch.py     RECORD lines made ahead, bounded in flight
    visitor_history.py  the retriever of GET /visitor/{id}/history for the visitors active in a window

Uses http/ (the messages that quote a body), settings/ (filters, dates, app ids) and the facts.

One record, hop by hop, from Pendo's response to stdout:
 1. ActivityCursor.stream_slices yields a StreamSlice {app_id} x {start, end}; a worker thread runs the
    CDK's DeclarativePartition.read, which calls ActivityRetriever.read_records with it.
 2. ActivityRetriever._read_window -> WindowPager.read_range (rollups; _read_bucket continues a bucket) or
    read_raw (guide/poll events) builds the body (WindowBodies.read -> pendo.aggregation_body) and sends it
    through the manifest's aggregation requester with `stream_response = True`; SuccessFirstErrorHandler
    passes a 2xx without reading its body.
 3. WindowPager.read_page: body_chunks(response) yields the body as it arrives (inflated here when gzip).
    read_raw holds the blocks of a multi-period page instead, until the page is known to be short.
 4. AggregationRowReader.feed_block cuts each chunk into a block: the text of the complete rows and a
    small decoded head (time, visitorId, text key fields) per row.
 5. RowFormat.read_block -> block_as_records turns the whole block into data objects with a few byte operations
    (periodStart spliced after the bucket field); a block that needs a decision per row (window edges,
    anonymous visitors, the keyset group, nested objects) goes row by row to RecordBatchBuilder.add.
 6. RecordBatchBuilder.add_block appends them between RECORD-line prefixes and suffixes; every BATCH_ROWS
    rows (and at the end of a page) flush takes a slot of the BatchGate IN_FLIGHT and cuts a RecordBatch,
    an AirbyteMessage that holds the lines as bytes.
 7. read_records yields the batch; DeclarativePartition.read hands a non-record message to the message
    repository, whose ConcurrentMessageRepository puts it on the concurrent framework's queue, in order
    with that partition's other messages. The main thread's ConcurrentSource yields it.
 8. SourcePendo.read passes it on when the connector's entrypoint runs the read (emit_record_batches);
    for any other caller it releases the batch and expands it into ordinary record messages.
 9. PendoEntrypoint.run counts its records for the state messages' sourceStats and yields it as it is;
    launch -> entrypoint.write_batch flushes the print buffer, writes the batch's bytes to stdout and
    releases its BatchGate slot.

One state message, hop by hop:
 1. The worker that read a window returns from read_records (the retriever has told the cursor the window's
    row count, which sizes the next windows, and released the window so another can be handed out); the
    CDK's PartitionReader then calls ActivityCursor.close_partition.
 2. close_partition: the window's data is settled up to (the time its read started - settle_ms), floored to
    the hour; AppProgress.complete records the window and moves the app's frontier through every window
    completed contiguously from the app's first, never past an unfinished one.
 3. _emit_state: the whole state ({version, period, start_date, apps: {app: {cursor field: frontier}}}) goes
    to the ConnectorStateManager and, as a STATE message, to the same message repository and queue as the
    records, so it follows the batches of the window it covers.
 4. ConcurrentSource and SourcePendo.read yield it; PendoEntrypoint.run (AirbyteEntrypoint.read) stamps
    sourceStats.recordCount, serialises it with secrets masked, and launch prints it through the print
    buffer, after every batch written before it.
"""
