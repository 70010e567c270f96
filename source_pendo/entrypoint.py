"""The connector's entrypoint: the CDK's, except that `read` prints record batches as they are.

`AirbyteEntrypoint.run` serialises every message through serpyco and orjson; the activity streams'
`RecordBatch` messages are already RECORD lines (see activity/record_batch.py), so for `read` this
entrypoint writes their bytes to stdout unchanged (no decode to str and encode back) and counts their
records for the state messages' `sourceStats`. spec, check and discover go through the CDK's code path
untouched. Every message but a record is printed with the secrets masked (see `airbyte_message_to_string`).

One failure, one ERROR trace: the CDK prints an ERROR trace for every partition (window) that raised, and, once
every stream is done, raises a summary naming them all again ("During the sync, the following streams did not
sync successfully: ..."), which the excepthook prints as one more ERROR trace. A user reading the sync's
failure would see the same cause several times and a summary whose `failure_type` (config_error) is not the
cause's. So `run` prints the first ERROR trace of each stream as it is (the connector's message: stream, cause,
window; its own `failure_type`), turns a stream's later ERROR traces, and a trace repeating a message already
printed for another stream, into ERROR log lines, and swallows the
summary when every stream it names already has its trace; `launch` then ends the process with exit code 1.
The stream status messages (INCOMPLETE for a failed stream) pass through untouched.

A destination that dies closes the connector's stdout: the next write raises BrokenPipeError. `launch` then
closes the record batches' gate (every reader waiting on it gets `WriterGone` at once) and ends the process
with exit code 1 right away (`os._exit`): the concurrent framework's worker threads are not daemons and would
keep the interpreter alive, reading on into its bounded queue that nobody empties any more (a hang of minutes,
or for ever). Nothing is lost that could have been delivered: stdout is gone, and the state already printed
covers only records printed before it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER, is_platform_debug_log_enabled
from airbyte_cdk.models import AirbyteLogMessage, AirbyteMessage, FailureType, Level, TraceType, Type
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, get_secrets, update_secrets
from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .activity.record_batch import IN_FLIGHT, RecordBatch
from .settings.masking import secret_forms

if TYPE_CHECKING:
    from .source import SourcePendo


CDK_SUMMARY = "Concurrent read failure"  # ConcurrentReadProcessor.is_done's internal_message for its summary


class PendoEntrypoint(AirbyteEntrypoint):
    def __init__(self, source: SourcePendo) -> None:
        super().__init__(source)
        self.pendo_source = source
        self.failed_streams: set[str] = set()  # streams whose ERROR trace was printed
        self.printed_errors: set[str] = set()  # the messages of the ERROR traces printed
        self.failed = False  # the sync failed and its error traces are printed: exit 1, no summary trace

    @staticmethod
    def set_up_secret_filter(config: Any, connection_specification: Mapping[str, Any]) -> None:
        """The CDK's secrets (the raw key) and every other form they and a `base_url` password are printed in
        (settings/masking.py): the CDK's call replaces the list run.py registered."""
        forms = set(get_secrets(connection_specification, config)) | set(secret_forms(config))
        update_secrets(sorted((str(form) for form in forms if form), key=len, reverse=True))

    def run(self, parsed_args: argparse.Namespace) -> Iterable[str | RecordBatch]:  # type: ignore[override]
        if (
            parsed_args.command != "read"
        ):  # check, discover: every line masked (a check message may quote a URL)
            yield from map(filter_secrets, super().run(parsed_args))
            return
        debug = getattr(parsed_args, "debug", False) or is_platform_debug_log_enabled()
        self.logger.setLevel(logging.DEBUG if debug else logging.INFO)
        if debug:  # as the CDK's run(): its HTTP client logs under "airbyte" (requests, headers masked)
            logging.getLogger("airbyte").setLevel(logging.DEBUG)
        self.pendo_source.emit_record_batches = True
        source_spec = self.source.spec(self.logger)
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as temp_dir:
            os.environ[ENV_REQUEST_CACHE_PATH] = temp_dir
            try:
                config = self.source.configure(self.source.read_config(parsed_args.config), temp_dir)
                yield from map(self.airbyte_message_to_string, self._emit_queued_messages(self.source))
                catalog = self.source.read_catalog(parsed_args.catalog)
                state = self.source.read_state(parsed_args.state)
                try:
                    for message in self.read(source_spec, config, catalog, state):
                        if isinstance(message, RecordBatch):
                            yield message  # written as bytes by launch()
                        elif message.type is Type.TRACE:
                            yield self.airbyte_message_to_string(self.first_error_only(message))
                        else:  # records of the other streams: no step added per record
                            yield self.airbyte_message_to_string(message)
                except AirbyteTracedException as error:
                    if not self.is_reported_summary(error):
                        # raised before any stream read (while the streams are built; a saved state is judged
                        # later, by its own stream): one ERROR trace, never an exception escaping as a traceback
                        message = error.as_sanitized_airbyte_message()
                        if (
                            error.failure_type == FailureType.config_error
                            and message.trace
                            and message.trace.error
                        ):
                            message.trace.error.stack_trace = None  # nothing to debug in a bad input
                        yield self.airbyte_message_to_string(self.first_error_only(message))
                    self.failed = True
            finally:
                yield from map(self.airbyte_message_to_string, self._emit_queued_messages(self.source))

    def first_error_only(self, message: AirbyteMessage) -> AirbyteMessage:
        """A stream's first ERROR trace as it is; its later ones (other windows), and a trace whose message was
        already printed for another stream (one cause, e.g. a redirect or a refused connection, failing every
        stream), as ERROR log lines."""
        trace = message.trace
        if (
            message.type != Type.TRACE
            or trace is None
            or trace.type != TraceType.ERROR
            or trace.error is None
        ):
            return message
        stream = trace.error.stream_descriptor.name if trace.error.stream_descriptor else None
        if stream is None:
            return message
        first_of_stream = stream not in self.failed_streams
        self.failed_streams.add(stream)
        if first_of_stream and trace.error.message not in self.printed_errors:
            self.printed_errors.add(trace.error.message)
            return message
        what = "Another part of stream" if not first_of_stream else "Stream"
        return AirbyteMessage(
            type=Type.LOG,
            log=AirbyteLogMessage(
                level=Level.ERROR,
                message=f"{what} {stream} failed too: {trace.error.message}",
            ),
        )

    def is_reported_summary(self, error: AirbyteTracedException) -> bool:
        """The CDK's closing "streams did not sync successfully" error: it names only streams whose exceptions went
        through `on_exception`, which yields each one's ERROR trace (with its stream), so each is printed."""
        return error.internal_message == CDK_SUMMARY and bool(self.failed_streams)

    @staticmethod
    def airbyte_message_to_string(airbyte_message: AirbyteMessage) -> str:
        """The CDK's, with the secrets masked in everything but records: the CDK prints a stream's error trace
        as it is, and its internal message quotes the response body, where a server may echo the key."""
        text = AirbyteEntrypoint.airbyte_message_to_string(airbyte_message)
        return text if airbyte_message.type == Type.RECORD else filter_secrets(text)

    @staticmethod
    def handle_record_counts(
        message: AirbyteMessage, stream_message_count: defaultdict[HashableStreamDescriptor, float]
    ) -> AirbyteMessage:
        if isinstance(message, RecordBatch):
            stream_message_count[HashableStreamDescriptor(name=message.stream, namespace=None)] += float(
                message.count
            )
            return message
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)


def launch(source: SourcePendo, args: list[str]) -> None:
    entrypoint = PendoEntrypoint(source)
    parsed_args = entrypoint.parse_args(args)
    _stop_when_a_log_finds_stdout_closed()
    try:
        with PRINT_BUFFER:
            for message in entrypoint.run(parsed_args):
                if isinstance(message, RecordBatch):
                    write_batch(message)
                else:
                    print(f"{message}\n", end="")
    except BrokenPipeError:
        stop_after_stdout_closed()
    if entrypoint.failed:  # the failed streams' ERROR traces are printed; the CDK's summary is not repeated
        sys.exit(1)


def stop_after_stdout_closed(exit_code: int = 1) -> None:
    """stdout was closed by its reader: release the readers waiting on the batch gate, say so on stderr, exit."""
    IN_FLIGHT.close()
    with contextlib.suppress(Exception):
        sys.__stderr__.write(  # type: ignore[union-attr]
            "source-pendo: stdout was closed by its reader (the destination stopped); the sync stopped.\n"
        )
        sys.__stderr__.flush()  # type: ignore[union-attr]
    os._exit(exit_code)


def _stop_when_a_log_finds_stdout_closed() -> None:
    """A log line written by another thread (a reader, the window planner) may be the first write to find stdout
    closed: its handler then stops the sync as `launch` does, instead of logging's "--- Logging error ---"
    traceback on stderr (and the sync reading on)."""
    for handler in logging.getLogger().handlers + logging.getLogger("airbyte").handlers:
        report = handler.handleError

        def handle_error(
            record: logging.LogRecord, report: Callable[[logging.LogRecord], None] = report
        ) -> None:
            if isinstance(sys.exc_info()[1], BrokenPipeError):
                stop_after_stdout_closed()
            report(record)

        handler.handleError = handle_error  # type: ignore[method-assign]


def write_batch(batch: RecordBatch) -> None:
    """The batch's bytes straight to stdout, after whatever the print buffer holds (order is kept)."""
    with PRINT_BUFFER.lock:
        PRINT_BUFFER.flush()
        out = cast(BinaryIO, sys.__stdout__.buffer)  # type: ignore[union-attr]  # None only without a console
        out.writelines(batch.parts)
        out.write(b"\n")
    batch.release()
