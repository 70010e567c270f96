"""Top-level columns for the metadata of accounts and visitors.

A Pendo account or visitor row nests its attributes as `metadata.<group>.<field>`, and the groups and fields
are the tenant's own (`agent`, `custom`, `salesforce`, ...). Why the manifest cannot say it: `AddFields`
needs every output path written in the manifest, and these paths are only known from the data.
The cursor column `lastupdated` is added in the same pass so each record is walked once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airbyte_cdk.sources.declarative.transformations import RecordTransformation
from airbyte_cdk.sources.types import Config, StreamSlice, StreamState

PER_APP_GROUP_PREFIX = "auto_"  # `auto_<appId>` groups repeat `auto` per app; they stay nested only


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
        for group, fields in metadata.items():
            if group.startswith(PER_APP_GROUP_PREFIX) or not isinstance(fields, dict):
                continue
            for field, value in fields.items():
                record[f"metadata_{group}_{field}"] = value
