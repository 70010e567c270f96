"""Top-level columns for the metadata of accounts and visitors.

A Pendo account or visitor row nests its attributes as `metadata.<group>.<field>`, and the groups and fields
are the tenant's own (`agent`, `custom`, `salesforce`, ...). Why the manifest cannot say it: `AddFields`
needs every output path written in the manifest, and these paths are only known from the data.
The cursor column `lastupdated` is added in the same pass so each record is walked once.

Column names (`metadata_column`, used by discover's schema too, so records and discover agree): a group
without an underscore (agent, custom, salesforce, ...) gives `metadata_<group>_<field>`; a group with one
gives `metadata_<group>__<field>`, two underscores, since `custom_a.b` would otherwise become the column of
`custom.a_b`. The name depends on the group and field alone, never on the other fields of a record. The
one collision left (a field holding `__` in a group without underscore, against a group with one) fails the
read with a message naming the column and both fields, never one value silently overwriting the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.types import Config, StreamSlice, StreamState
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

PER_APP_GROUP_PREFIX = "auto_"  # `auto_<appId>` groups repeat `auto` per app; they stay nested only


def metadata_column(group: str, field: str) -> str:
    """The top-level column of metadata.<group>.<field> (see the module docstring)."""
    return f"metadata_{group}__{field}" if "_" in group else f"metadata_{group}_{field}"


@dataclass
class PromoteMetadataFields(RecordTransformation):
    """Adds `lastupdated` = metadata.auto.lastupdated and `metadata_<group>_<field>` for every group not
    starting with `auto_`; the nested `metadata` object is left unchanged."""

    def transform(
        self,
        record: dict[str, Any],
        config: Config | None = None,
        stream_state: StreamState | None = None,
        stream_slice: StreamSlice | None = None,
    ) -> None:
        metadata = record.get("metadata")
        if not isinstance(metadata, dict):
            record["lastupdated"] = None
            return
        auto = metadata.get("auto")
        record["lastupdated"] = auto.get("lastupdated") if isinstance(auto, dict) else None
        written: dict[str, str] = {}
        for group, fields in metadata.items():
            if group.startswith(PER_APP_GROUP_PREFIX) or not isinstance(fields, dict):
                continue
            for field, value in fields.items():
                column = metadata_column(group, field)
                if column in written:
                    message = (
                        f"The metadata fields {written[column]} and {group}.{field} both map to the column "
                        f"{column}: rename one of them in Pendo (Settings > Data Mappings) so neither value is lost."
                    )
                    raise AirbyteTracedException(
                        message=message, internal_message=message, failure_type=FailureType.config_error
                    )
                written[column] = f"{group}.{field}"
                record[column] = value
