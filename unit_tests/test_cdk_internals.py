"""Guards for the airbyte-cdk internals the connector relies on: each test fails, with what to re-check, when a
CDK upgrade changes one of them. They test the CDK's side only (names, signatures, a few code paths), so they
hold whatever our modules are called.

Where we rely on them:
- the entrypoint (source_pendo/entrypoint.py) subclasses `AirbyteEntrypoint`: it re-implements the `read`
  branch of `run` (calling `read`, `_emit_queued_messages`, `airbyte_message_to_string`, the source's
  `read_config`/`configure`/`read_catalog`/`read_state`) and overrides `handle_record_counts` so that record
  batches are counted in the state messages' `sourceStats`; run.py calls `parse_args` and
  `airbyte_message_to_string` statically;
- the source (source_pendo/source.py) subclasses `YamlDeclarativeSource`: overrides
  `_read_and_parse_yaml_file`, `streams` and `read`, and reads `resolved_manifest` and `_config`;
- the activity streams are assembled by hand from the manifest: `source._constructor.create_component(
  CustomRetrieverModel, definition, config, name=, primary_key=, cursor=)`, `source._message_repository`,
  `source._connector_state_manager.get_stream_state(name, None)`, `DeclarativePartitionFactory(name, schema,
  retriever, message_repository)`, `StreamSlicerPartitionGenerator(factory, cursor)` and `DefaultStream(...)`;
  the retriever yields `RecordBatch` messages (an `AirbyteMessage` subclass) that the partition must hand to
  the message repository as they are;
- custom components implement the CDK's abstract bases (Cursor, Retriever, PaginationStrategy, ...): a new
  abstract method would make them uninstantiable.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomRetriever as CustomRetrieverModel,
)
from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
from airbyte_cdk.sources.declarative.stream_slicers.declarative_partition_generator import (
    DeclarativePartition,
    DeclarativePartitionFactory,
    StreamSlicerPartitionGenerator,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream

RECHECK_ENTRYPOINT = (
    "re-check source_pendo/entrypoint.py (PendoEntrypoint.run's read branch, handle_record_counts)"
)
RECHECK_SOURCE = "re-check source_pendo/source.py (SourcePendo's overrides)"
RECHECK_ACTIVITY = "re-check build_activity_stream (the activity streams' DefaultStream assembly)"


def params(function: Callable[..., Any]) -> list[str]:
    """The parameter names of `function`, `self` included, in order."""
    return list(inspect.signature(function).parameters)


def assert_params_start_with(function: Callable[..., Any], expected: list[str], recheck: str) -> None:
    actual = params(function)
    assert actual[: len(expected)] == expected, (
        f"{function.__qualname__}{inspect.signature(function)} no longer starts with {expected}: {recheck}"
    )


def assert_accepts(function: Callable[..., Any], keywords: list[str], recheck: str) -> None:
    signature = inspect.signature(function)
    missing = [k for k in keywords if k not in signature.parameters]
    assert not missing, f"{function.__qualname__}{signature} lost parameter(s) {missing}: {recheck}"
    required = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in keywords
        and name != "self"
    ]
    assert not required, f"{function.__qualname__}{signature} now requires {required}: {recheck}"


# ------------------------------------------------------------------------------------------- entrypoint


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("run", ["self", "parsed_args"]),
        ("read", ["self", "source_spec", "config", "catalog", "state"]),
        ("_emit_queued_messages", ["self", "source"]),
        ("handle_record_counts", ["message", "stream_message_count"]),
        ("airbyte_message_to_string", ["airbyte_message"]),
        ("parse_args", ["args"]),
    ],
)
def test_entrypoint_methods_keep_the_signatures_we_call_and_override(
    method: str, expected: list[str]
) -> None:
    function = getattr(AirbyteEntrypoint, method, None)
    assert function is not None, f"AirbyteEntrypoint.{method} is gone: {RECHECK_ENTRYPOINT}"
    assert params(function) == expected, (
        f"AirbyteEntrypoint.{method}{inspect.signature(function)} != {expected}: {RECHECK_ENTRYPOINT}"
    )


def test_entrypoint_static_methods_stay_static() -> None:
    for name in ("handle_record_counts", "airbyte_message_to_string", "parse_args"):
        assert isinstance(inspect.getattr_static(AirbyteEntrypoint, name), staticmethod), (
            f"AirbyteEntrypoint.{name} is no longer a staticmethod: {RECHECK_ENTRYPOINT} and source_pendo/run.py"
        )


def test_entrypoint_read_counts_records_through_the_overridable_hook() -> None:
    """Our handle_record_counts counts a RecordBatch's records: it only takes effect if `read` calls it through
    `self` for every message, and `_emit_queued_messages` reads the source's message repository."""
    read = inspect.getsource(AirbyteEntrypoint.read)
    assert "self.handle_record_counts(" in read, (
        f"AirbyteEntrypoint.read no longer calls self.handle_record_counts: {RECHECK_ENTRYPOINT}"
    )
    assert "self.source.read(" in read, (
        f"AirbyteEntrypoint.read no longer calls self.source.read: {RECHECK_ENTRYPOINT}"
    )
    queued = inspect.getsource(AirbyteEntrypoint._emit_queued_messages)
    assert "message_repository" in queued and "consume_queue" in queued, (
        f"AirbyteEntrypoint._emit_queued_messages no longer drains source.message_repository: {RECHECK_ENTRYPOINT}"
    )


def test_entrypoint_run_read_branch_is_the_one_we_reimplement() -> None:
    """PendoEntrypoint.run's read branch copies the CDK's: the same calls, in the same places. A new step in the
    CDK's (a new setting, a new check) must be copied too."""
    run = inspect.getsource(AirbyteEntrypoint.run)
    for call in (
        "self.source.spec(self.logger)",
        "ENV_REQUEST_CACHE_PATH",
        "self.source.read_config(parsed_args.config)",
        "self.source.configure(",
        "self.source.read_catalog(parsed_args.catalog)",
        "self.source.read_state(parsed_args.state)",
        "self.read(",
        "self._emit_queued_messages(self.source)",
        "is_platform_debug_log_enabled()",
    ):
        assert call in run, f"AirbyteEntrypoint.run no longer has `{call}`: {RECHECK_ENTRYPOINT}"


def test_entrypoint_keeps_logger_and_source_attributes_and_the_print_buffer() -> None:
    from airbyte_cdk.logger import PRINT_BUFFER
    from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
    from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH  # noqa: F401

    init = inspect.getsource(AirbyteEntrypoint.__init__)
    assert "self.source = source" in init and "self.logger" in init, (
        f"AirbyteEntrypoint.__init__ changed: {RECHECK_ENTRYPOINT}"
    )
    assert (
        hasattr(PRINT_BUFFER, "lock")
        and hasattr(PRINT_BUFFER, "flush")
        and hasattr(PRINT_BUFFER, "__enter__")
    ), (
        "airbyte_cdk.logger.PRINT_BUFFER lost lock/flush/context manager: re-check entrypoint.write_batch and launch"
    )
    counts: defaultdict[Any, float] = defaultdict(float)
    counts[HashableStreamDescriptor(name="events", namespace=None)] += 1.0  # as handle_record_counts does


# ------------------------------------------------------------------------------------------- the source


def test_yaml_declarative_source_reads_the_manifest_through_the_overridable_hook() -> None:
    assert_params_start_with(YamlDeclarativeSource.__init__, ["self", "path_to_yaml"], RECHECK_SOURCE)
    assert_accepts(
        YamlDeclarativeSource.__init__, ["path_to_yaml", "config", "catalog", "state"], RECHECK_SOURCE
    )
    assert params(YamlDeclarativeSource._read_and_parse_yaml_file) == ["self", "path_to_yaml_file"], (
        RECHECK_SOURCE
    )
    assert "self._read_and_parse_yaml_file(" in inspect.getsource(YamlDeclarativeSource.__init__), (
        f"YamlDeclarativeSource.__init__ no longer reads the manifest through _read_and_parse_yaml_file: {RECHECK_SOURCE}"
        " (the request timeouts from request_timeout_seconds would be lost)"
    )


def test_concurrent_declarative_source_read_and_discover_go_through_streams() -> None:
    """SourcePendo.streams replaces the activity streams: `read` and `discover` must take them from it."""
    assert params(ConcurrentDeclarativeSource.streams) == ["self", "config"], RECHECK_SOURCE
    assert params(ConcurrentDeclarativeSource.read) == ["self", "logger", "config", "catalog", "state"], (
        RECHECK_SOURCE
    )
    for method in (ConcurrentDeclarativeSource.read, ConcurrentDeclarativeSource.discover):
        assert "self.streams(" in inspect.getsource(method), (
            f"ConcurrentDeclarativeSource.{method.__name__} no longer calls self.streams(): {RECHECK_SOURCE}"
        )


MINIMAL_MANIFEST: dict[str, Any] = {
    "version": "7.39.1",
    "type": "DeclarativeSource",
    "check": {"type": "CheckStream", "stream_names": ["s"]},
    "streams": [
        {
            "type": "DeclarativeStream",
            "name": "s",
            "primary_key": [],
            "schema_loader": {"type": "InlineSchemaLoader", "schema": {"type": "object", "properties": {}}},
            "retriever": {
                "type": "SimpleRetriever",
                "requester": {"type": "HttpRequester", "url_base": "https://example.invalid", "path": "/x"},
                "record_selector": {
                    "type": "RecordSelector",
                    "extractor": {"type": "DpathExtractor", "field_path": []},
                },
            },
        }
    ],
    "spec": {"type": "Spec", "connection_specification": {"type": "object", "properties": {}}},
}


def test_concurrent_declarative_source_has_the_attributes_the_activity_streams_are_built_from() -> None:
    source = ConcurrentDeclarativeSource(
        source_config=MINIMAL_MANIFEST, config={"a": 1}, catalog=None, state=None
    )
    for attribute in (
        "_constructor",
        "_message_repository",
        "_connector_state_manager",
        "_config",
        "resolved_manifest",
    ):
        assert hasattr(source, attribute), (
            f"ConcurrentDeclarativeSource lost `{attribute}`: {RECHECK_ACTIVITY}"
        )
    assert source._config == {"a": 1}, (
        f"ConcurrentDeclarativeSource._config is no longer the config: {RECHECK_SOURCE}"
    )
    assert [s["name"] for s in source.resolved_manifest["streams"]] == ["s"], (
        f"resolved_manifest changed shape: {RECHECK_SOURCE}"
    )
    assert isinstance(source._constructor, ModelToComponentFactory), RECHECK_ACTIVITY
    assert source._connector_state_manager.get_stream_state("s", None) == {}, (
        f"ConnectorStateManager.get_stream_state(name, namespace) changed: {RECHECK_ACTIVITY}"
    )
    assert callable(getattr(source._message_repository, "emit_message", None)), RECHECK_ACTIVITY


# ------------------------------------------------------------------------------ activity-stream assembly


def test_create_component_signature() -> None:
    assert params(ModelToComponentFactory.create_component) == [
        "self",
        "model_type",
        "component_definition",
        "config",
        "kwargs",
    ], (
        f"ModelToComponentFactory.create_component{inspect.signature(ModelToComponentFactory.create_component)}: {RECHECK_ACTIVITY}"
    )


@dataclass
class _ProbeRetriever:
    """A custom retriever that records what the factory passed it (the CDK fills fields from type hints)."""

    config: Mapping[str, Any]
    name: str
    primary_key: list[str]
    cursor: Any
    extra: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


def test_custom_retriever_gets_the_keyword_arguments_we_pass_to_create_component() -> None:
    cursor = object()
    retriever = ModelToComponentFactory().create_component(
        CustomRetrieverModel,
        {
            "type": "CustomRetriever",
            "class_name": f"{__name__}._ProbeRetriever",
            "extra": "from the manifest",
        },
        {"k": "v"},
        name="events",
        primary_key=["a", "b"],
        cursor=cursor,
    )
    assert isinstance(retriever, _ProbeRetriever), RECHECK_ACTIVITY
    assert (
        retriever.name,
        retriever.primary_key,
        retriever.cursor,
        retriever.extra,
        dict(retriever.config),
    ) == ("events", ["a", "b"], cursor, "from the manifest", {"k": "v"}), (
        f"create_component no longer hands name/primary_key/cursor/config and manifest fields to a custom retriever: {RECHECK_ACTIVITY}"
    )


def test_partition_factory_and_generator_take_what_we_pass_positionally() -> None:
    assert_params_start_with(
        DeclarativePartitionFactory.__init__,
        ["self", "stream_name", "schema_loader", "retriever", "message_repository"],
        RECHECK_ACTIVITY,
    )
    assert_params_start_with(
        StreamSlicerPartitionGenerator.__init__,
        ["self", "partition_factory", "stream_slicer"],
        RECHECK_ACTIVITY,
    )
    assert_accepts(
        DeclarativePartitionFactory.__init__,
        ["stream_name", "schema_loader", "retriever", "message_repository"],
        RECHECK_ACTIVITY,
    )
    assert_accepts(
        StreamSlicerPartitionGenerator.__init__, ["partition_factory", "stream_slicer"], RECHECK_ACTIVITY
    )
    generate = inspect.getsource(StreamSlicerPartitionGenerator.generate)
    assert "stream_slices()" in generate, (
        f"the partition generator no longer iterates the cursor's stream_slices(): {RECHECK_ACTIVITY}"
    )


def test_partition_hands_non_record_messages_to_the_message_repository() -> None:
    """The activity retriever yields RecordBatch messages (AirbyteMessage, not a Mapping): the partition must emit
    them through the message repository as they are, in order with the partition's state."""

    class Retriever:
        def read_records(self, records_schema: Mapping[str, Any], stream_slice: Any) -> Iterable[Any]:
            yield {"id": 1}
            yield message

    class Repository:
        def __init__(self) -> None:
            self.emitted: list[Any] = []

        def emit_message(self, m: Any) -> None:
            self.emitted.append(m)

    class Schema:
        def get_json_schema(self) -> Mapping[str, Any]:
            return {}

    from airbyte_cdk.models import AirbyteMessage, Type

    message = AirbyteMessage(type=Type.RECORD)
    repository = Repository()
    factory = DeclarativePartitionFactory("events", Schema(), Retriever(), repository)  # type: ignore[arg-type]
    from airbyte_cdk.sources.types import StreamSlice

    partition = factory.create(StreamSlice(partition={}, cursor_slice={}))
    assert isinstance(partition, DeclarativePartition)
    records = list(partition.read())
    assert [dict(r.data) for r in records] == [{"id": 1}], RECHECK_ACTIVITY
    assert repository.emitted == [message] and repository.emitted[0] is message, (
        f"DeclarativePartition.read no longer emits non-Mapping stream data through the message repository: {RECHECK_ACTIVITY}"
        " and source_pendo/activity/record_batch.py"
    )


def test_default_stream_accepts_the_keyword_arguments_we_pass() -> None:
    assert_accepts(
        DefaultStream.__init__,
        ["partition_generator", "name", "json_schema", "primary_key", "cursor_field", "logger", "cursor"],
        RECHECK_ACTIVITY,
    )


# ------------------------------------------------------------------------------- abstract bases we implement


def _abstract(cls: type) -> set[str]:
    return set(getattr(cls, "__abstractmethods__", set()))


CDK = "airbyte_cdk.sources"


@pytest.mark.parametrize(
    ("path", "we_implement", "implemented_by"),
    [
        (
            f"{CDK}.streams.concurrent.cursor.Cursor",
            {
                "state",
                "observe",
                "should_be_synced",
                "close_partition",
                "ensure_at_least_one_state_emitted",
                "stream_slices",
            },
            "ActivityCursor",
        ),
        (
            f"{CDK}.declarative.retrievers.retriever.Retriever",
            {"read_records"},
            "ActivityRetriever, VisitorHistoryRetriever",
        ),
        (
            f"{CDK}.declarative.requesters.paginators.strategies.pagination_strategy.PaginationStrategy",
            {"initial_token", "next_page_token", "get_page_size"},
            "KeysetPagination",
        ),
        (f"{CDK}.declarative.transformations.RecordTransformation", {"transform"}, "PromoteMetadataFields"),
        (
            f"{CDK}.declarative.extractors.record_extractor.RecordExtractor",
            {"extract_records"},
            "MetadataFieldsExtractor",
        ),
        (f"{CDK}.declarative.schema.schema_loader.SchemaLoader", {"get_json_schema"}, "MetadataSchemaLoader"),
        (
            f"{CDK}.streams.http.error_handlers.ErrorHandler",
            {"max_retries", "max_time", "interpret_response"},
            "DelegatingErrorHandler and its subclasses",
        ),
    ],
)
def test_bases_we_implement_keep_their_methods_and_ask_for_no_new_one(
    path: str, we_implement: set[str], implemented_by: str
) -> None:
    module, _, name = path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    new = _abstract(cls) - we_implement
    assert not new, f"{path} has new abstract method(s) {sorted(new)}: re-check {implemented_by}"
    gone = sorted(m for m in we_implement if not hasattr(cls, m))
    assert not gone, (
        f"{path} no longer has {gone} (the CDK may no longer call ours): re-check {implemented_by}"
    )
