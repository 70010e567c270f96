"""Unit-test speed-up: every SourcePendo construction re-parses the CDK's own 6,000-line component schema
YAML (~0.1 s); it is a pure read of a packaged file, so the tests parse it once."""

from __future__ import annotations

import functools

import pytest
from airbyte_cdk.sources.declarative import concurrent_declarative_source


@pytest.fixture(autouse=True, scope="session")
def _component_schema_parsed_once() -> None:
    load = concurrent_declarative_source.get_declarative_component_schema
    concurrent_declarative_source.get_declarative_component_schema = functools.cache(load)
    yield
    concurrent_declarative_source.get_declarative_component_schema = load
