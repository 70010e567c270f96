"""metadata_<group>_<field> columns: one name per (group, field), the same in records and in discover."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.entities.metadata_columns import PromoteMetadataFields, metadata_column
from source_pendo.entities.metadata_schema import MetadataSchemaLoader

COLLIDING = {"custom": {"a_b": "from custom.a_b"}, "custom_a": {"b": "from custom_a.b"}}


class _Base:
    def get_json_schema(self) -> dict[str, Any]:
        return {"properties": {}}


class _Response:
    def __init__(self, body: Any) -> None:
        self._body = body

    def raise_for_status(self) -> None:
        pass

    def json(self) -> Any:
        return self._body


def _promoted(metadata: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"metadata": metadata}
    PromoteMetadataFields().transform(record)
    return {k: v for k, v in record.items() if k.startswith("metadata_")}


def test_metadata_column_names_are_distinct_for_fields_that_joined_to_one_name() -> None:
    assert metadata_column("custom", "a_b") == "metadata_custom_a_b"  # unchanged for groups without _
    assert metadata_column("custom_a", "b") == "metadata_custom_a__b"


def test_metadata_both_colliding_values_are_kept_in_the_record_under_their_own_columns() -> None:
    assert _promoted(COLLIDING) == {
        "metadata_custom_a_b": "from custom.a_b",
        "metadata_custom_a__b": "from custom_a.b",
    }
    assert _promoted({"custom_a": {"b": 1}}) == {"metadata_custom_a__b": 1}, (
        "the name never depends on other fields"
    )


def test_metadata_the_collision_left_fails_naming_the_column_and_both_fields() -> None:
    with pytest.raises(AirbyteTracedException) as raised:
        _promoted({"custom": {"a__b": 1}, "custom_a": {"b": 2}})
    assert "custom.a__b and custom_a.b both map to the column metadata_custom_a__b" in (
        raised.value.message or ""
    )


def test_metadata_discover_types_the_same_columns_as_the_records_carry() -> None:
    schema = {group: {field: {"Type": "string"} for field in fields} for group, fields in COLLIDING.items()}
    loader = MetadataSchemaLoader(
        config={}, parameters={"name": "accounts"}, base_schema=_Base(), metadata_kind="account"
    )  # type: ignore[arg-type]
    with patch("source_pendo.entities.metadata_schema.quick_get", return_value=_Response(schema)):
        properties = loader.get_json_schema()["properties"]
    assert set(_promoted(COLLIDING)) <= set(properties)
