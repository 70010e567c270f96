"""metadata.yaml is valid Airbyte connector metadata and agrees with pyproject.toml and the Dockerfile."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import (
    ConnectorMetadataDefinitionV0,
)
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
REGION_HOSTS = {"app.pendo.io", "us1.app.pendo.io", "app.eu.pendo.io", "app.jpn.pendo.io", "app.au.pendo.io"}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "metadata.yaml").read_text())


@pytest.fixture(scope="module")
def metadata(raw: dict[str, Any]) -> ConnectorMetadataDefinitionV0:
    return ConnectorMetadataDefinitionV0.model_validate(raw)


def _unknown_keys(model: BaseModel, path: str = "") -> list[str]:
    """Keys the (mostly extra="allow") models accepted without knowing them: typos such as `allowedHost`."""
    found = [f"{path}{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += _unknown_keys(value, f"{path}{name}.")
    return found


def test_validates_without_unknown_keys(metadata: ConnectorMetadataDefinitionV0) -> None:
    assert _unknown_keys(metadata) == []


def test_identity(metadata: ConnectorMetadataDefinitionV0) -> None:
    data = metadata.data
    assert data.connector_type.value == "source"
    assert data.connector_subtype.value == "api"
    assert data.docker_repository == "airbyte/source-pendo"
    assert data.name == "Pendo"
    assert data.support_level.value == "community"
    assert uuid.UUID(str(data.definition_id)).version == 4
    assert set(data.tags) >= {"language:python", "cdk:low-code"}
    assert (ROOT / data.icon).read_text().lstrip().startswith("<svg")


def test_image_tag_matches_pyproject_version(metadata: ConnectorMetadataDefinitionV0) -> None:
    # (a regex, not tomllib: Python 3.10 is supported and has none)
    match = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert match is not None
    version = match.group(1)
    assert metadata.data.docker_image_tag == version


def test_every_region_host_is_allowed(metadata: ConnectorMetadataDefinitionV0) -> None:
    assert metadata.data.allowed_hosts is not None
    assert set(metadata.data.allowed_hosts.hosts or []) >= REGION_HOSTS


def test_base_image_is_pinned_and_matches_dockerfile(metadata: ConnectorMetadataDefinitionV0) -> None:
    base = metadata.data.connector_build_options.base_image
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:4\.\d+\.\d+@sha256:[0-9a-f]{64}", base)
    assert f"ARG BASE_IMAGE={base}\n" in (ROOT / "Dockerfile").read_text()


def test_not_published_to_pypi(metadata: ConnectorMetadataDefinitionV0) -> None:
    assert metadata.data.remote_registries.pypi.enabled is False


def test_suggested_streams_are_streams_of_the_connector(metadata: ConnectorMetadataDefinitionV0) -> None:
    suggested = metadata.data.suggested_streams
    assert suggested is not None and suggested.streams
    schemas = ROOT / "source_pendo" / "schemas"
    assert [s for s in suggested.streams if not (schemas / f"{s}.json").exists()] == []


def test_max_seconds_between_messages_outlasts_one_slow_window_and_its_retries(
    metadata: ConnectorMetadataDefinitionV0,
) -> None:
    """The longest legitimate silence: one request up to request_timeout_seconds' maximum, then the backoff."""
    spec = yaml.safe_load((ROOT / "source_pendo" / "manifest.yaml").read_text())["spec"]
    timeout_max = spec["connection_specification"]["properties"]["request_timeout_seconds"]["maximum"]
    backoff = 7 + 13 + 25 + 49 + 97 + 193  # the six retries' waits (docs/development.md: faults)
    assert metadata.data.max_seconds_between_messages is not None
    assert metadata.data.max_seconds_between_messages >= timeout_max + backoff
