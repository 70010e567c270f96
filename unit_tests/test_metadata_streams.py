"""metadata_accounts / metadata_visitors records, and the metadata columns discover types from them."""

from __future__ import annotations

from unittest import TestCase

from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker
from builders import ConfigBuilder, get_request, json_response, payload, read_stream, text_response

from source_pendo.source import SourcePendo

NULLABLE_STRING = {"type": ["null", "string"]}


def _discovered_schemas(config: dict) -> dict:
    output = discover(SourcePendo(config=config), config)
    return {stream.name: stream.json_schema for stream in output.catalog.catalog.streams}


class MetadataStreamsTest(TestCase):
    @HttpMocker()
    def test_metadata_accounts_one_record_per_group_and_field_with_the_descriptor_unchanged(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(get_request("metadata/schema/account"), json_response(payload("metadata_accounts")))

        records = [r.record.data for r in read_stream("metadata_accounts", ConfigBuilder().build()).records]

        assert len(records) == 10
        assert records[0] == {
            "group": "agent",
            "field": "name",
            **payload("metadata_accounts")["agent"]["name"],
        }
        assert {(r["group"], r["field"]) for r in records} >= {("custom", "arr"), ("auto", "firstvisit")}

    @HttpMocker()
    def test_metadata_visitors_keep_per_app_groups(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(get_request("metadata/schema/visitor"), json_response(payload("metadata_visitors")))

        records = [r.record.data for r in read_stream("metadata_visitors", ConfigBuilder().build()).records]

        assert [(r["group"], r["field"], r["Type"]) for r in records] == [
            ("agent", "email", "string"),
            ("agent", "language", "string"),
            ("auto", "accountids", "list"),
            ("auto", "firstvisit", "time"),
            ("auto__323232", "lastvisit", "time"),
            ("custom", "plan", "string"),
            ("pendo", "donotprocess", "boolean"),
        ]


class DynamicSchemaTest(TestCase):
    @HttpMocker()
    def test_accounts_discover_types_metadata_columns_from_the_metadata_schema(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(get_request("metadata/schema/account"), json_response(payload("metadata_accounts")))
        http_mocker.get(get_request("metadata/schema/visitor"), json_response(payload("metadata_visitors")))

        properties = _discovered_schemas(ConfigBuilder().build())["accounts"]["properties"]

        assert {name: properties[name] for name in properties if name.startswith("metadata_custom_")} == {
            "metadata_custom_tier": NULLABLE_STRING,
            "metadata_custom_arr": {"type": ["null", "number"]},
            "metadata_custom_churned": {"type": ["null", "boolean"]},
            "metadata_custom_employees": {"type": ["null", "integer"]},
            "metadata_custom_regions": {"type": ["null", "array"]},
            "metadata_custom_notes": {},
        }
        assert properties["metadata_auto_firstvisit"] == {"type": ["null", "integer"]}
        assert properties["metadata"]["properties"]["custom"]["properties"]["arr"] == {
            "type": ["null", "number"]
        }
        assert properties["accountId"] == {"type": "string"}

    @HttpMocker()
    def test_visitors_discover_nests_per_app_groups_without_promoting_them(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(get_request("metadata/schema/account"), json_response(payload("metadata_accounts")))
        http_mocker.get(get_request("metadata/schema/visitor"), json_response(payload("metadata_visitors")))

        properties = _discovered_schemas(ConfigBuilder().build())["visitors"]["properties"]

        assert properties["metadata"]["properties"]["auto__323232"]["properties"]["lastvisit"] == {
            "type": ["null", "integer"]
        }
        assert not [name for name in properties if name.startswith("metadata_auto__")]
        assert properties["metadata_pendo_donotprocess"] == {"type": ["null", "boolean"]}

    @HttpMocker()
    def test_visitors_discover_falls_back_to_the_schema_file_with_a_warning_when_the_call_fails(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(get_request("metadata/schema/account"), json_response(payload("metadata_accounts")))
        http_mocker.get(get_request("metadata/schema/visitor"), text_response("oops", 500))

        config = ConfigBuilder().build()
        output = discover(SourcePendo(config=config), config)

        schema = {s.name: s.json_schema for s in output.catalog.catalog.streams}["visitors"]
        assert sorted(schema["properties"]) == ["lastupdated", "metadata", "visitorId"]
        assert any(
            "visitor metadata schema" in log.log.message
            for log in output.logs
            if log.log.level.value == "WARN"
        )
