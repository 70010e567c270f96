"""Airbyte's standard (acceptance) tests, in-process, against the Pendo emulator; and the inputs of Airbyte's
Connector Acceptance Tests (CAT), checked here so that a CAT run keeps passing.

`airbyte_cdk.test.standard_tests.SourceTestSuiteBase` reads `acceptance-test-config.yml` at the repo root
and runs, for each config it lists: `spec` (the spec lints, and spec_config.json matches it), `check`
(sample_config.json succeeds, invalid_config.json reports FAILED, and no secret is printed), `discover`
(catalog checks), a full-refresh `read` of every discovered stream (every stream must return records that
match its schema) and a `read` with a malformed catalog (must fail).

acceptance-test-config.yml is CAT's at `test_strictness_level: high` (docs/development.md, "Airbyte's
acceptance tests"); CAT runs the image against `python -m integration_tests.acceptance_emulator`. The standard
tests read the same file, without `expect_records` (CAT's comparison with recorded records, which they do not
run and refuse as a key they do not read). What CAT checks beyond them is checked here too, in-process:
* basic_read's expected records: the connector's records against the acceptance emulator equal
  integration_tests/expected_records.jsonl, which equals the emulator's ground truth;
* incremental with a future state (integration_tests/abnormal_state.json): every incremental stream of the
  catalog has a state there, reads nothing, and saves its state with the same cursor values;
* the configs point at the fixed port the acceptance emulator serves, and the connector's clock in the
  config is the one the expected records were made for.
Record counts against ground truth, faults, retries, regions, HOUR period and app_ids: our own integration
tests (test_entity_streams.py, test_activity_streams.py, ...) and unit tests.

The configs name the acceptance emulator's fixed address; this module starts an emulator on a free port and
points that address at it when a scenario's config is loaded. Image tests (`image_tests` marker, which would
build a Docker image) are skipped unless an image is given: `pytest -p airbyte_cdk.test.standard_tests.pytest_hooks
--connector-image IMG integration_tests/test_acceptance.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests import pytest_hooks as standard_hooks
from boltons.typeutils import classproperty

from integration_tests import acceptance_emulator as acceptance
from integration_tests.conftest import CONNECTOR_NOW_ENV, catalog_for, run_connector
from integration_tests.pendo_emulator import EmulatorProcess
from source_pendo.source import SourcePendo

REPO_ROOT = Path(__file__).resolve().parents[1]
CAT_CONFIG = yaml.safe_load((REPO_ROOT / "acceptance-test-config.yml").read_text())
CAT_ONLY_KEYS = ("expect_records",)  # CAT's record comparison: the standard tests refuse the key


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `scenario` from acceptance-test-config.yml, unless the CDK's hooks plugin is loaded
    (`-p airbyte_cdk.test.standard_tests.pytest_hooks`) and does it already."""
    if not metafunc.config.pluginmanager.is_registered(standard_hooks):
        standard_hooks.pytest_generate_tests(metafunc)


class TestSourcePendoAcceptance(SourceTestSuiteBase):
    """The CDK's standard source tests, with SourcePendo built from each scenario's config."""

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        return REPO_ROOT

    @classproperty
    def acceptance_test_config(cls) -> Any:
        """acceptance-test-config.yml without the keys only CAT reads (`CAT_ONLY_KEYS`)."""
        config = json.loads(json.dumps(CAT_CONFIG))
        for section in config["acceptance_tests"].values():
            for entry in section.get("tests", []):
                for key in CAT_ONLY_KEYS:
                    entry.pop(key, None)
        return config

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourcePendo:
        """SourcePendo built the way `source-pendo` builds it: from the config it runs with. The suite reads
        full refresh without state and passes its own catalog on the command line, so none is given here."""
        if scenario is None:  # `spec`
            return SourcePendo()
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True)
        return SourcePendo(config=config, catalog=None, state=None)

    @pytest.fixture(autouse=True)
    def _image_tests_need_an_image(self, request: pytest.FixtureRequest) -> None:
        """`-m "not image_tests"` by default: an image test runs only with --connector-image."""
        if request.node.get_closest_marker("image_tests") is None:
            return
        image = request.config.getoption("--connector-image", default=None)
        if not image:
            pytest.skip(
                "image test: needs -p airbyte_cdk.test.standard_tests.pytest_hooks --connector-image IMG"
            )

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _configs_on_the_emulator(cls, emulator_now: int) -> Iterator[None]:
        """Start the emulator on the session's pinned clock (the in-process connector reads the matching
        `SOURCE_PENDO_NOW_MS`, see conftest.py); every scenario config whose base_url is the acceptance
        emulator's fixed address is loaded with this emulator's URL instead (the config the connector is built
        with, and the file the suite passes it)."""
        original = ConnectorTestScenario.get_config_dict

        with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now) as emulator:

            def get_config_dict(
                self: ConnectorTestScenario, *, connector_root: Path, empty_if_missing: bool
            ) -> dict[str, Any]:
                config = original(self, connector_root=connector_root, empty_if_missing=empty_if_missing)
                if config.get("base_url") == acceptance.ACCEPTANCE_BASE_URL:
                    config = {**config, "base_url": emulator.base_url}
                return config

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(ConnectorTestScenario, "get_config_dict", get_config_dict)
                yield


# ------------------------------------------------------------------------------------------ CAT's inputs
def _cat_tests(section: str) -> list[dict[str, Any]]:
    return list(CAT_CONFIG["acceptance_tests"][section]["tests"])


def _config(name: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / "integration_tests" / name).read_text())


def test_cat_runs_at_high_strictness_with_every_section_high_requires():
    assert CAT_CONFIG["test_strictness_level"] == "high"
    for section in ("spec", "connection", "discovery", "basic_read", "full_refresh", "incremental"):
        assert _cat_tests(section), f"high strictness requires the {section} section"
    [basic_read] = _cat_tests("basic_read")
    assert "configured_catalog_path" not in basic_read, "high strictness reads the whole discovered catalog"
    assert basic_read["expect_records"]["path"] == "integration_tests/expected_records.jsonl"


def test_cat_configs_point_at_the_acceptance_emulator_and_the_connector_clock_matches_it():
    for entry in _cat_tests("connection") + _cat_tests("basic_read"):
        assert _config(Path(entry["config_path"]).name)["base_url"] == acceptance.ACCEPTANCE_BASE_URL
    env = CAT_CONFIG["custom_environment_variables"]
    assert env[CONNECTOR_NOW_ENV] == str(acceptance.CONNECTOR_NOW_MS)


def test_cat_expected_records_are_the_acceptance_emulators_ground_truth():
    """If this fails after a change to the emulator's data or the sample config, regenerate the file:
    `.venv/bin/python -m integration_tests.acceptance_emulator expected-records`."""
    shipped = acceptance.EXPECTED_RECORDS.read_text().splitlines()
    assert shipped == acceptance.expected_records()


def test_cat_basic_read_gives_exactly_the_expected_records():
    """CAT's basic_read, in-process: the whole discovered catalog read against the acceptance emulator (its
    clock, data and time zone) gives the records of expected_records.jsonl, every stream non-empty."""
    expected: dict[str, list[str]] = {}
    for line in acceptance.EXPECTED_RECORDS.read_text().splitlines():
        record = json.loads(line)
        expected.setdefault(record["stream"], []).append(_canonical(record["data"]))
    with EmulatorProcess(
        scale=acceptance.SCALE, seed=acceptance.SEED, now_ms=acceptance.ACCEPTANCE_NOW_MS, tz=acceptance.TZ
    ) as emulator:
        config = dict(_config("sample_config.json"), base_url=emulator.base_url)
        env = {CONNECTOR_NOW_ENV: str(acceptance.CONNECTOR_NOW_MS)}
        discover = run_connector("discover", config, env=env)
        catalog = discover.of_type("CATALOG")[0]["catalog"]
        names = [s["name"] for s in catalog["streams"]]
        run = run_connector("read", config, catalog_for(names, "full_refresh", discovered=catalog), env=env)
    assert run.returncode == 0, run.errors()
    assert sorted(expected) == sorted(names), "every discovered stream has expected records"
    for stream, records in expected.items():
        got = sorted(_canonical(r) for r in run.records(stream))
        assert got == sorted(records), f"{stream}: {len(got)} records read, {len(records)} expected"


def _canonical(record: dict[str, Any]) -> str:
    """A record as text, a top-level null left out (the CDK leaves such fields out of some streams' records)."""
    return json.dumps({k: v for k, v in record.items() if v is not None}, sort_keys=True)


def test_cat_future_state_covers_every_incremental_stream_reads_nothing_and_keeps_each_cursor(
    base_config, discovered
):
    """CAT's test_state_with_abnormally_large_values: the state of abnormal_state.json (year 2100) for every
    incremental stream; no record, a STATE per stream holding the same cursor values, of the schema's type."""
    [entry] = _cat_tests("incremental")
    future = json.loads((REPO_ROOT / entry["future_state"]["future_state_path"]).read_text())
    incremental = [s for s in discovered["streams"] if "incremental" in s["supported_sync_modes"]]
    names = sorted(s["name"] for s in incremental)
    assert sorted(m["stream"]["stream_descriptor"]["name"] for m in future) == names
    run = run_connector("read", base_config, catalog_for(names, discovered=discovered), state=future)
    assert run.returncode == 0, run.errors()
    assert run.records() == []
    saved = {m["stream"]["stream_descriptor"]["name"]: m["stream"]["stream_state"] for m in future}
    final = {s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in run.final_state()}
    assert sorted(final) == names
    for stream in incremental:
        [field] = stream["default_cursor_field"]
        assert _cursor_values(final[stream["name"]], field) == _cursor_values(saved[stream["name"]], field)
        assert all(type(v) is int for v in _cursor_values(final[stream["name"]], field)), stream["name"]
        assert "integer" in stream["json_schema"]["properties"][field]["type"]


def _cursor_values(state: Any, field: str) -> list[Any]:
    """Every value under `field` anywhere in a state, as CAT collects them."""
    if isinstance(state, dict):
        return [v for k, v in state.items() if k == field] + [
            x for v in state.values() for x in _cursor_values(v, field)
        ]
    if isinstance(state, list):
        return [x for v in state for x in _cursor_values(v, field)]
    return []
