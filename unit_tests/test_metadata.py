"""metadata.yaml is valid Airbyte connector metadata (its pydantic model and its JSON schema, both from
airbyte-connector-models) and agrees with pyproject.toml, the Dockerfile, the docs' changelog and the migration
guide."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import (
    ConnectorMetadataDefinitionV0,
)
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
REGION_HOSTS = {"app.pendo.io", "us1.app.pendo.io", "app.eu.pendo.io", "app.jpn.pendo.io", "app.au.pendo.io"}
UPSTREAM_DEFINITION_ID = "b1ccb590-e84f-46c0-83a0-2048ccfffdae"  # Airbyte's source-pendo, 0.x
UPSTREAM_STREAMS = ["Page", "Feature", "Report", "Guide", "Account Metadata", "Visitor Metadata"]


def _poetry_field(name: str) -> str:
    """A field of pyproject.toml's [tool.poetry], where Airbyte's QA checks read the version and the license (a
    regex, not tomllib: Python 3.10 is supported and has none)."""
    section = re.search(
        r"^\[tool\.poetry\]\n(.*?)(?=^\[)", (ROOT / "pyproject.toml").read_text(), re.M | re.S
    )
    assert section is not None, "pyproject.toml has no [tool.poetry]"
    match = re.search(rf'^{name} = "([^"]+)"$', section.group(1), re.M)
    assert match is not None, f"[tool.poetry] has no {name}"
    return match.group(1)


def _without_nested_ids(node: Any, root: bool = True) -> Any:
    """The bundled schema without its sub-schemas' `$id`s: its `$ref`s are pointers from the root document, which
    draft-07 would resolve against the nearest `$id` (jsonschema: PointerToNowhere)."""
    if isinstance(node, dict):
        return {k: _without_nested_ids(v, False) for k, v in node.items() if root or k != "$id"}
    if isinstance(node, list):
        return [_without_nested_ids(v, False) for v in node]
    return node


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


def test_validates_against_the_json_schema_of_airbyte_connector_models(raw: dict[str, Any]) -> None:
    """The JSON schema, not only the pydantic model: the model accepts some documents the schema refuses (an
    empty `releases.breakingChanges`, minProperties 1). Formats (uuid, date, uri) are checked too."""
    bundled = json.loads(
        resources.files("airbyte_connector_models.metadata.v0")
        .joinpath("ConnectorMetadataDefinitionV0.json")
        .read_text()
    )
    validator = jsonschema.Draft7Validator(
        _without_nested_ids(bundled), format_checker=jsonschema.FormatChecker()
    )
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(raw)]
    assert errors == []


def test_the_json_schema_check_catches_what_the_model_lets_through(raw: dict[str, Any]) -> None:
    bundled = json.loads(
        resources.files("airbyte_connector_models.metadata.v0")
        .joinpath("ConnectorMetadataDefinitionV0.json")
        .read_text()
    )
    broken = json.loads(json.dumps(raw))
    broken["data"]["releases"]["breakingChanges"] = {}
    broken["data"]["definitionId"] = "not-a-uuid"
    validator = jsonschema.Draft7Validator(
        _without_nested_ids(bundled), format_checker=jsonschema.FormatChecker()
    )
    assert len(list(validator.iter_errors(broken))) == 2


def test_the_version_is_one_everywhere(metadata: ConnectorMetadataDefinitionV0) -> None:
    version = metadata.data.docker_image_tag
    assert _poetry_field("version") == version
    assert f'io.airbyte.version="{version}"' in (ROOT / "Dockerfile").read_text()
    changelog = (ROOT / "docs" / "pendo.md").read_text().split("## Changelog", 1)[1]
    first_row = next(line for line in changelog.splitlines() if re.match(r"^\| *\d+\.\d+\.\d+", line))
    assert first_row.split("|")[1].strip() == version, "the changelog's newest row is this version"


def test_the_license_is_one_everywhere(metadata: ConnectorMetadataDefinitionV0) -> None:
    assert _poetry_field("license").upper() == str(metadata.data.license).upper() == "MIT"


def test_poetry_is_the_same_version_in_setup_venv_and_the_dockerfile() -> None:
    setup = re.search(r"^POETRY_VERSION=(\S+)", (ROOT / "scripts" / "setup_venv.sh").read_text(), re.M)
    docker = re.search(r"^ARG POETRY_VERSION=(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert setup and docker and setup.group(1) == docker.group(1)


def test_this_is_the_next_major_version_of_airbytes_source_pendo(raw: dict[str, Any]) -> None:
    """Upstream's definition, a major version, and the breaking change as Airbyte's QA checks want it: a message,
    a deadline more than a week out, what happens at the deadline, the old streams it replaces, and a migration
    guide whose headings follow the breaking changes (newest first)."""
    data = raw["data"]
    assert data["definitionId"] == UPSTREAM_DEFINITION_ID
    version = data["dockerImageTag"]
    assert version.endswith(".0.0")
    changes = data["releases"]["breakingChanges"]
    change = changes[version]
    assert change["message"] and change["deadlineAction"] in ("auto_upgrade", "disable")
    assert date.fromisoformat(change["upgradeDeadline"]) > date(2026, 12, 14)
    [scope] = change["scopedImpact"]
    assert scope["scopeType"] == "stream" and scope["impactedScopes"] == UPSTREAM_STREAMS
    guide = (ROOT / "docs" / "pendo-migrations.md").read_text().splitlines()
    assert guide[0] == f"# {data['name']} Migration Guide"
    upgrades = [
        line.removeprefix("## Upgrading to ").strip() for line in guide if line.startswith("## Upgrading to ")
    ]
    assert upgrades == sorted(changes, reverse=True)
    assert all(f"`{stream}`" in "\n".join(guide) for stream in UPSTREAM_STREAMS), "every old stream is mapped"


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


IGNORED_DIRS = {
    ".venv",
    "tests",
    "unit_tests",
    "integration_tests",
    "test-integration",
    "build",
    "source-file",
}
IGNORED_SUFFIXES = (
    "Test.java",
    ".jar",
    ".pyc",
    ".gz",
    ".svg",
    "expected_records.json",
    "expected_records.jsonl",
)
COMMENT = {".py": "#", ".yml": "#", ".yaml": "#", ".md": "<!--", ".java": "//"}


def test_http_urls_stand_only_where_airbytes_https_check_allows_them() -> None:
    """Airbyte's QA check CheckConnectorUsesHTTPSOnly, as airbyte-internal-ops runs it, over the tracked files:
    no line with http:// but json-schema.org and localhost, comment lines and lines marked ignore-https-check
    aside (scripts/airbyte_qa.sh runs the check itself)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    found = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if set(Path(name).parts[:-1]) & IGNORED_DIRS or name.endswith(IGNORED_SUFFIXES) or not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            text = line.lower().replace("http://json-schema.org", "").replace("http://localhost", "")
            comment = COMMENT.get(path.suffix)
            if (
                "http://" in text
                and "# ignore-https-check" not in text
                and not (comment and text.strip().startswith(comment))
            ):
                found.append(f"{name}:{number}")
    assert found == [], found
