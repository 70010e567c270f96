"""docs/pendo.md documents every spec option and every stream the connector discovers.

`spec` and `discover` run in-process. Discover needs no server: under an HttpMocker with no responses every
request fails, so the metadata-schema lookup fails and accounts/visitors fall back to their base schemas
with a warning; every stream is still discovered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airbyte_cdk.models import Type
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker

from source_pendo.source import SourcePendo

DOCS = Path(__file__).resolve().parents[1] / "docs" / "pendo.md"
DISCOVER_CONFIG = {"api_key": "00000000-docs-test-key.us", "start_date": "2024-01-01"}


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text()


def _code_names(text: str) -> set[str]:
    """Every `name` written in backticks (how the page names options and streams)."""
    return set(re.findall(r"`([^`\s]+)`", text))


def test_every_spec_property_is_documented(docs: str) -> None:
    spec = SourcePendo().spec(None)  # type: ignore[arg-type]  # the declarative spec ignores the logger
    properties = spec.connectionSpecification["properties"]
    assert properties, "the spec declares no properties"
    missing = sorted(set(properties) - _code_names(docs))
    assert not missing, f"spec properties not in docs/pendo.md: {missing}"


@pytest.mark.allow_unmocked_requests  # discover must fall back when every request fails
def test_every_discovered_stream_is_documented(docs: str) -> None:
    with HttpMocker():  # no responses: every request fails, discover falls back to the base schemas
        output = discover(SourcePendo(config=DISCOVER_CONFIG), DISCOVER_CONFIG)
    catalogs = output.get_message_by_types([Type.CATALOG])
    assert len(catalogs) == 1, output.errors
    streams = {stream.name for stream in catalogs[0].catalog.streams}
    assert len(streams) >= 18
    missing = sorted(streams - _code_names(docs))
    assert not missing, f"discovered streams not in docs/pendo.md: {missing}"


def test_docs_list_every_region(docs: str) -> None:
    spec = SourcePendo().spec(None)  # type: ignore[arg-type]
    regions = spec.connectionSpecification["properties"]["region"]["enum"]
    missing = sorted(set(regions) - _code_names(docs))
    assert not missing, f"regions not in docs/pendo.md: {missing}"
